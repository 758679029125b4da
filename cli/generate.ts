/**
 * bora generate: runs the model in this process (--model DIR) or sends the request to a
 * coordinator (--coordinator HOST:PORT, or the one of --state-dir D), streaming text as it is
 * generated, or with --json printing {"tokens":[...],"text":"..."} at the end. On a secure cluster
 * --state-dir brings the CA, the client certificate and the client API key from D/cluster.json;
 * --ca/--cert/--key/--api-key (or BORA_API_KEY) give them by hand.
 */
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { InvalidArgumentError } from '../common/errors';
import { DEFAULT_MAX_TOKENS, type GenerationEvent, type GenerationRequest } from '../common/generation/request';
import { openLocalGenerator } from '../common/generation/local-generator';
import { parseSamplingParams, type SamplingParams } from '../common/sampling/sampler';
import { NON_NEGATIVE, UINT32, floatFlag, idListFlag, intFlag, parseFlags } from './args';
import { ACCESS_FLAGS, resolveAccess } from './client-access';
import { type ClusterFile, readClusterFile } from './cluster-file';
import { generateRemote } from './inference-client';

/** The flags samplingFrom reads (also `bora chat`'s). */
export const SAMPLING_FLAGS = {
  'max-tokens': { type: 'string' },
  greedy: { type: 'boolean' },
  temperature: { type: 'string' },
  'top-p': { type: 'string' },
  'top-k': { type: 'string' },
  seed: { type: 'string' },
} as const;

const FLAGS = {
  model: { type: 'string' },
  coordinator: { type: 'string' },
  'state-dir': { type: 'string' },
  ...ACCESS_FLAGS,
  prompt: { type: 'string' },
  'prompt-ids': { type: 'string' },
  ...SAMPLING_FLAGS,
  stop: { type: 'string', multiple: true },
  'ignore-eos': { type: 'boolean' },
  json: { type: 'boolean' },
  'logits-out': { type: 'string' },
  threads: { type: 'string' },
  'deadline-ms': { type: 'string' },
} as const;

export function samplingFrom(values: Record<string, string | boolean | string[] | undefined>): SamplingParams {
  const randomFlags = ['temperature', 'top-p', 'top-k', 'seed'].filter((f) => values[f] !== undefined);
  if (values.greedy === true && randomFlags.length > 0) {
    throw new InvalidArgumentError(`--greedy cannot be combined with --${randomFlags.join(', --')}`);
  }
  if (values.greedy === true || randomFlags.length === 0) return { kind: 'greedy' };
  return parseSamplingParams({
    kind: 'random',
    temperature: floatFlag(values.temperature as string | undefined, '--temperature', 1),
    topP: floatFlag(values['top-p'] as string | undefined, '--top-p', 1),
    topK: intFlag(values['top-k'] as string | undefined, '--top-k', 0, UINT32),
    seed: values.seed === undefined ? 0 : (values.seed as string),
  });
}

export function parseGenerateRequest(values: Record<string, string | boolean | string[] | undefined>): GenerationRequest {
  const text = values.prompt as string | undefined;
  const ids = values['prompt-ids'] as string | undefined;
  if ((text === undefined) === (ids === undefined)) throw new InvalidArgumentError('give exactly one of --prompt TEXT or --prompt-ids 1,415,...');
  return {
    prompt: text !== undefined ? { kind: 'text', text } : { kind: 'ids', ids: idListFlag(ids!, '--prompt-ids') },
    maxTokens: intFlag(values['max-tokens'] as string | undefined, '--max-tokens', DEFAULT_MAX_TOKENS, { min: 1, max: UINT32.max }),
    sampling: samplingFrom(values),
    stop: (values.stop as string[] | undefined) ?? [],
    ignoreEos: values['ignore-eos'] === true,
    returnFirstLogits: values['logits-out'] !== undefined,
  };
}

/** Prints events as they come: streamed text, or one JSON object at the end. */
export class GenerateOutput {
  private readonly tokens: number[] = [];
  private text = '';

  constructor(
    private readonly json: boolean,
    private readonly logitsOut: string | undefined,
  ) {}

  onEvent = (event: GenerationEvent): void => {
    if (event.type === 'token') {
      this.tokens.push(event.tokenId);
      this.write(event.text);
      if (event.firstLogits !== undefined && this.logitsOut !== undefined) {
        writeFileSync(this.logitsOut, Buffer.from(event.firstLogits.buffer, event.firstLogits.byteOffset, event.firstLogits.byteLength));
      }
    } else {
      this.write(event.text);
      if (this.json) process.stdout.write(`${JSON.stringify({ tokens: this.tokens, text: this.text, finish: event.reason })}\n`);
      else process.stdout.write('\n');
    }
  };

  private write(text: string): void {
    this.text += text;
    if (!this.json && text !== '') process.stdout.write(text);
  }
}

export async function generateCommand(argv: string[]): Promise<void> {
  const { values } = parseFlags(argv, FLAGS);
  const request = parseGenerateRequest(values);
  const output = new GenerateOutput(values.json === true, values['logits-out']);
  if (values.coordinator !== undefined || values['state-dir'] !== undefined) {
    if (values.model !== undefined) throw new InvalidArgumentError('give --model (in process) or --coordinator / --state-dir (cluster), not both');
    const cluster: ClusterFile | undefined = values['state-dir'] === undefined ? undefined : readClusterFile(resolve(values['state-dir']));
    const coordinator = values.coordinator ?? cluster!.coordinator;
    const access = resolveAccess(values, cluster?.security, 'client');
    await generateRemote(coordinator, request, output.onEvent, intFlag(values['deadline-ms'], '--deadline-ms', 600_000, { min: 1, max: NON_NEGATIVE.max }), access);
    return;
  }
  if (values.model === undefined) throw new InvalidArgumentError('--model DIR or FILE.gguf (in process), --coordinator HOST:PORT or --state-dir D is required');
  const compute = values.threads === undefined ? undefined : { threads: intFlag(values.threads, '--threads', undefined, { min: 1, max: 1024 }) };
  const local = await openLocalGenerator(values.model, compute);
  try {
    await local.generator.start(request, output.onEvent).done;
  } finally {
    await local.close();
  }
}
