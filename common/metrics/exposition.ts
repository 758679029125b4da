/**
 * A reader for the Prometheus text exposition format (version 0.0.4), the format /metrics
 * serves. Tests and the chaos harness use it to read values back from a scrape instead of
 * matching substrings. It reads sample lines only; `# HELP` and `# TYPE` lines are skipped.
 *
 * Sample line grammar: name [ '{' label '="' escaped value '"' {',' ...} [','] '}' ] value [timestamp]
 * where a label value escapes only backslash (\\), double quote (\") and newline (\n).
 */
import { InvalidArgumentError } from '../errors';

export interface MetricSample {
  /** The series name as written, e.g. `bora_inter_token_seconds_bucket`. */
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*/;

export function parseExposition(text: string): MetricSample[] {
  const samples: MetricSample[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line === '' || line.startsWith('#')) continue;
    samples.push(parseSampleLine(line, i + 1));
  }
  return samples;
}

function parseSampleLine(line: string, lineNumber: number): MetricSample {
  const fail = (why: string): never => {
    throw new InvalidArgumentError(`exposition line ${lineNumber}: ${why}: ${JSON.stringify(line)}`);
  };
  const name = NAME.exec(line)?.[0] ?? fail('no metric name');
  let at = name.length;
  const labels: Record<string, string> = {};
  if (line[at] === '{') {
    at++;
    while (line[at] !== '}') {
      const labelName = LABEL_NAME.exec(line.slice(at))?.[0] ?? fail(`bad label name at column ${at + 1}`);
      at += labelName.length;
      if (line.slice(at, at + 2) !== '="') fail(`expected =" after label ${labelName}`);
      at += 2;
      let value = '';
      for (;;) {
        if (at >= line.length) fail(`unterminated value of label ${labelName}`);
        const c = line[at++];
        if (c === '"') break;
        if (c !== '\\') {
          value += c;
          continue;
        }
        const escaped = line[at++];
        if (escaped === 'n') value += '\n';
        else if (escaped === '\\' || escaped === '"') value += escaped;
        else fail(`bad escape \\${escaped} in label ${labelName}`);
      }
      if (labelName in labels) fail(`label ${labelName} appears twice`);
      labels[labelName] = value;
      if (line[at] === ',') at++;
      else if (line[at] !== '}') fail(`expected , or } at column ${at + 1}`);
    }
    at++;
  }
  const rest = line.slice(at).trim().split(/\s+/);
  if (rest.length < 1 || rest.length > 2 || rest[0] === '') fail('expected a value and an optional timestamp');
  return { name, labels, value: parseValue(rest[0]) ?? fail(`bad value ${rest[0]}`) };
}

/** Go's ParseFloat rules, which Prometheus uses: Inf and NaN in any letter case (prom-client writes "Nan"). */
function parseValue(text: string): number | undefined {
  const lower = text.toLowerCase();
  if (lower === 'nan') return NaN;
  if (lower === '+inf' || lower === 'inf' || lower === '+infinity' || lower === 'infinity') return Infinity;
  if (lower === '-inf' || lower === '-infinity') return -Infinity;
  const value = Number(text);
  return Number.isNaN(value) ? undefined : value;
}

/**
 * The one sample named `name` whose labels are exactly `labels`, or undefined when there is none.
 * More than one match is impossible in a valid exposition and is reported as an error.
 */
export function findSample(
  samples: readonly MetricSample[],
  name: string,
  labels: Readonly<Record<string, string>> = {},
): MetricSample | undefined {
  const wanted = Object.entries(labels);
  const matches = samples.filter(
    (s) =>
      s.name === name &&
      Object.keys(s.labels).length === wanted.length &&
      wanted.every(([key, value]) => s.labels[key] === value),
  );
  if (matches.length > 1) {
    throw new InvalidArgumentError(`${matches.length} samples match ${name}${JSON.stringify(labels)}`);
  }
  return matches[0];
}

/** Like findSample, but the sample must exist; returns its value. */
export function sampleValue(
  samples: readonly MetricSample[],
  name: string,
  labels: Readonly<Record<string, string>> = {},
): number {
  const sample = findSample(samples, name, labels);
  if (sample === undefined) throw new InvalidArgumentError(`no sample ${name}${JSON.stringify(labels)}`);
  return sample.value;
}

/** GETs http://ADDRESS/metrics (ADDRESS is host:port) and parses it. */
export async function scrapeMetrics(address: string): Promise<MetricSample[]> {
  const response = await fetch(`http://${address}/metrics`);
  if (!response.ok) throw new Error(`GET http://${address}/metrics: ${response.status}`);
  return parseExposition(await response.text());
}
