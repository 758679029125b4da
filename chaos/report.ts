/**
 * The game day's report: OUT/report.json (everything, for tools and tests) and OUT/report.md
 * (for people): a summary table, then per scenario its criteria, measures, faults and the nodes'
 * log lines around them.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Capabilities } from './capabilities';
import type { ScenarioResult } from './runner';

export interface Report {
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly short: boolean;
  readonly machine: string;
  readonly capabilities: string[];
  /** The probe itself, so that a reader (the game-day test) can tell which scenarios this machine supports. */
  readonly capabilityProbe: Capabilities;
  readonly model: string;
  readonly leaseTtlMs: number;
  readonly replicas: number;
  readonly results: ScenarioResult[];
}

export function overallPassed(report: Report): boolean {
  return report.results.every((r) => r.status !== 'fail');
}

export function writeReport(outDir: string, report: Report): { json: string; markdown: string } {
  mkdirSync(outDir, { recursive: true });
  const json = join(outDir, 'report.json');
  const markdown = join(outDir, 'report.md');
  writeFileSync(json, `${JSON.stringify(report, null, 2)}\n`);
  writeFileSync(markdown, renderMarkdown(report));
  return { json, markdown };
}

function cell(value: number | boolean | string | null | undefined): string {
  if (value === null || value === undefined) return '–';
  if (typeof value === 'boolean') return value ? 'yes' : 'NO';
  return String(value);
}

export function renderMarkdown(report: Report): string {
  const lines: string[] = [];
  const counts = { pass: 0, fail: 0, skipped: 0 };
  for (const r of report.results) counts[r.status] += 1;
  lines.push('# Bora chaos game day', '');
  lines.push(`${report.startedAt} – ${report.finishedAt}; ${report.short ? 'short' : 'full-length'} mode; lease TTL ${report.leaseTtlMs} ms; ${report.replicas} cop${report.replicas === 1 ? 'y' : 'ies'} of each layer range; model ${report.model}.`);
  lines.push(`Machine: ${report.machine}.`, '');
  lines.push(`**${counts.pass} passed, ${counts.fail} failed, ${counts.skipped} skipped.**`, '');
  lines.push('Capabilities:', '', ...report.capabilities.map((c) => `- ${c}`), '');
  lines.push('| id | scenario | result | requests (completed) | outputs identical | reshards | detection ms | recovery ms | inter-token p50 / p95 ms (fault-free) |');
  lines.push('|---|---|---|---|---|---|---|---|---|');
  for (const r of report.results) {
    const m = r.measures;
    const latency = m === null ? '–' : `${cell(m.interTokenP50Ms)} / ${cell(m.interTokenP95Ms)} (${cell(m.referenceInterTokenP50Ms)} / ${cell(m.referenceInterTokenP95Ms)})`;
    lines.push(
      `| ${r.id} | ${r.title} | ${r.status.toUpperCase()} | ${m === null ? '–' : `${m.requests} (${m.completed})`} | ${cell(m?.outputsIdentical)} | ${cell(m?.reshards)} | ${cell(m?.detectionMs)} | ${cell(m?.recoveryMs)} | ${latency} |`,
    );
  }
  lines.push('');
  lines.push('Detection: fault -> the first Status call (timed when sent) that showed a higher plan epoch; S9: -> the first Status reply of the standby saying it serves. Recovery: fault -> the token that ended the longest stall (>= 500 ms, all streams together) after it, else the next token. Reshards: plan epoch delta over the faulted run.', '');
  for (const r of report.results) {
    lines.push(`## ${r.id} — ${r.title}: ${r.status.toUpperCase()}`, '');
    lines.push(`Passes when: ${r.passWhen}.`, '');
    if (r.status === 'skipped') {
      lines.push(`Skipped: ${r.reason}`, '');
      continue;
    }
    if (r.criteria.length > 0) {
      lines.push(...r.criteria.map((c) => `- [${c.pass ? 'x' : ' '}] ${c.name} — ${c.detail}`), '');
    }
    if (r.measures !== null) {
      const m = r.measures;
      lines.push(
        `Measures: ${m.requests} requests, ${m.completed} completed; outputs identical: ${cell(m.outputsIdentical)}; reshards ${cell(m.reshards)}; detection ${cell(m.detectionMs)} ms; recovery ${cell(m.recoveryMs)} ms (next token ${cell(m.nextTokenMs)} ms); inter-token p50 ${cell(m.interTokenP50Ms)} ms, p95 ${cell(m.interTokenP95Ms)} ms (fault-free ${cell(m.referenceInterTokenP50Ms)} / ${cell(m.referenceInterTokenP95Ms)} ms); faulted run ${cell(m.faultedRunMs)} ms.`,
        '',
      );
    }
    const extra = Object.entries(r.extra);
    if (extra.length > 0) lines.push(`Details: ${extra.map(([k, v]) => `${k} = ${cell(v)}`).join('; ')}.`, '');
    if (r.faults.length > 0) lines.push('Faults and process events (ms from the start of the faulted run):', '', ...r.faults.map((f) => `- ${f.atMs} ${f.kind}: ${f.text}`), '');
    if (r.evidence.length > 0) lines.push(`Node log lines (seconds on the run's clock; all logs in \`${r.runDir}/logs\`):`, '', '```', ...r.evidence, '```', '');
  }
  return `${lines.join('\n')}\n`;
}
