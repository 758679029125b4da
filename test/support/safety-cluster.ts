/**
 * The safety filter's cluster fixture, shared by the gRPC and HTTP tests: the model's greedy text
 * for a prompt, two words of it to redact and to block, a policy file with prompt and output
 * rules, and how many forwards the workers ran (a blocked prompt must run none).
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { scrapeMetrics } from '../../common/metrics/exposition';
import { bora, type TestCluster } from './cluster';

/** `bora generate --greedy` of `prompt` in one process: the text the filters will see. */
export async function localGreedy(model: string, prompt: string, maxTokens: number): Promise<{ tokens: number[]; text: string }> {
  const out = await bora(['generate', '--model', model, '--prompt', prompt, '--greedy', '--max-tokens', String(maxTokens), '--json']);
  return JSON.parse(out.trim().split('\n').pop()!) as { tokens: number[]; text: string };
}

/** Two words that appear once each in `text` (case-insensitively), the first before the second. */
export function pickWords(text: string): [string, string] {
  const lower = text.toLowerCase();
  const words = lower.split(' ').filter((w) => /^[a-z]{3,}$/.test(w) && lower.indexOf(w) === lower.lastIndexOf(w));
  assert.ok(words.length >= 3, `the greedy text has too few plain words to test with: ${JSON.stringify(text)}`);
  // The blocked word comes early enough that the stream is cut before max_tokens.
  return [words[0]!, words[Math.floor(words.length / 2)]!];
}

/**
 * A policy in `dir`: prompts with "forbidden topic" are blocked and "zanzibar" redacted; output
 * has `redactWord` redacted and is blocked at `blockWord`. Returns the file's path.
 */
export function writeTestPolicy(dir: string, redactWord: string, blockWord: string): string {
  const policy = join(dir, 'policy.json');
  writeFileSync(
    policy,
    JSON.stringify({
      rules: [
        { id: 'no-topic', kind: 'deny', phrases: ['forbidden topic'], action: 'block', stages: ['prompt'] },
        { id: 'hide-name', kind: 'deny', phrases: ['zanzibar'], action: 'redact', stages: ['prompt'] },
        { id: 'hide-word', kind: 'regex', pattern: redactWord, flags: 'i', maxMatchChars: redactWord.length, action: 'redact', stages: ['output'] },
        { id: 'stop-word', kind: 'deny', phrases: [blockWord], action: 'block', stages: ['output'] },
      ],
    }),
  );
  return policy;
}

/** Forward passes run by all of the cluster's workers so far. */
export async function workerForwards(cluster: TestCluster): Promise<number> {
  let total = 0;
  for (const w of cluster.file.workers) {
    for (const s of await scrapeMetrics(w.metrics!)) if (s.name === 'bora_stage_forward_seconds_count') total += s.value;
  }
  return total;
}
