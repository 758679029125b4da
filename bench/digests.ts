/**
 * bench:digests — what verifying a model version's weights costs (common/models/weight-digests.ts):
 * the throughput of the streamed SHA-256 a worker runs over its weight files, against a plain
 * streamed read of the same file (the disk / page cache alone) and a one-shot hash of the whole
 * file in memory; and how long the event loop is held meanwhile (its longest delay, from
 * perf_hooks' event-loop delay histogram, sampled every 10 ms), which is what decides whether a
 * worker keeps its etcd lease while it hashes 14 GB. The file is written first, so it is read
 * from the page cache: the figures are the hashing's, not a disk's.
 *
 *   npm run bench:digests [-- --mib N]   (default 512 MiB; median of 3 runs)
 */
import { createHash, randomFillSync } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, open, readFile, rm } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { HASH_CHUNK_BYTES, hashFile } from '../common/models/weight-digests';
import { median } from './stats';

const MIB = 1024 * 1024;

function streamRead(path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const stream = createReadStream(path, { highWaterMark: HASH_CHUNK_BYTES });
    stream.on('data', () => undefined);
    stream.on('error', reject);
    stream.on('end', resolve);
  });
}

async function oneShot(path: string): Promise<void> {
  createHash('sha256').update(await readFile(path)).digest();
}

/** Runs `work` 3 times: median MB/s and the longest event-loop delay seen in any run (ms). */
async function measure(bytes: number, work: () => Promise<unknown>): Promise<{ mbPerSecond: number; maxLoopDelayMs: number }> {
  const rates: number[] = [];
  let maxDelayMs = 0;
  for (let run = 0; run < 3; run++) {
    const histogram = monitorEventLoopDelay({ resolution: 10 });
    histogram.enable();
    const started = performance.now();
    await work();
    const seconds = (performance.now() - started) / 1000;
    histogram.disable();
    rates.push(bytes / 1e6 / seconds);
    maxDelayMs = Math.max(maxDelayMs, histogram.max / 1e6);
  }
  return { mbPerSecond: median(rates), maxLoopDelayMs: maxDelayMs };
}

async function main(): Promise<void> {
  const flag = process.argv.indexOf('--mib');
  const mib = flag >= 0 ? Number(process.argv[flag + 1]) : 512;
  if (!Number.isSafeInteger(mib) || mib < 1) throw new Error(`--mib must be a positive integer, got ${process.argv[flag + 1]}`);
  const dir = await mkdtemp(join(tmpdir(), 'bora-bench-digests-'));
  const path = join(dir, 'weights.bin');
  try {
    const fh = await open(path, 'w');
    const block = Buffer.alloc(16 * MIB);
    for (let written = 0; written < mib * MIB; written += block.length) {
      randomFillSync(block);
      await fh.write(block, 0, Math.min(block.length, mib * MIB - written));
    }
    await fh.close();
    const bytes = mib * MIB;
    await streamRead(path); // warm the page cache
    const rows: [string, { mbPerSecond: number; maxLoopDelayMs: number }][] = [
      ['streamed read, no hash (1 MiB chunks)', await measure(bytes, () => streamRead(path))],
      ['streamed SHA-256 (hashFile, 1 MiB chunks)', await measure(bytes, () => hashFile(path))],
      ['one-shot SHA-256 of the whole file in memory', await measure(bytes, () => oneShot(path))],
    ];
    console.log(`bench:digests: ${mib} MiB file (page cache), ${cpus()[0]?.model ?? 'unknown CPU'}, Node ${process.version}, ${new Date().toISOString()}`);
    console.log('| how | MB/s (median of 3) | longest event-loop delay (ms) |');
    console.log('|---|---:|---:|');
    for (const [name, r] of rows) console.log(`| ${name} | ${r.mbPerSecond.toFixed(0)} | ${r.maxLoopDelayMs.toFixed(1)} |`);
    const hashed = rows[1][1].mbPerSecond;
    console.log(`at ${hashed.toFixed(0)} MB/s a 14 GB model verifies in about ${(14e3 / hashed).toFixed(0)} s`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
