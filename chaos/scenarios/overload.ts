/**
 * S12 (issue 9): overload on a secure cluster with tight admission limits (OVERLOAD_LIMITS: 2
 * streams per key, 4 running cluster-wide, 2 queued for at most 2 s, prompts of at most 1 MiB).
 *
 * The reference run is what the limits admit at once: 4 streams from 2 keys, so its inter-token
 * p99 is the unloaded latency of a full cluster. The faulted run then sends, from 4 keys, 10x
 * what the limits admit (10 x (4 running + 2 queued) = 60 requests) in waves spread over twice
 * the reference run's duration, so refused requests keep arriving while the admitted ones
 * generate, and later waves find room as the first admitted streams end.
 * Three of them carry 10 MiB text prompts. The requests reuse the reference prompts, so every
 * admitted stream has its oracle.
 *
 * Passing: admitted streams' inter-token p99 within 2x the reference's; every other request
 * refused with RESOURCE_EXHAUSTED (an oversized prompt with RESOURCE_EXHAUSTED or
 * INVALID_ARGUMENT, see refusals.ts); nothing else; every node's RSS within its fault-free peak
 * + 256 MiB.
 */
import { clientKeyNames } from '../chaos-pki';
import { interTokenGapsMs, percentile } from '../measures';
import { describePeaks, memoryPeaks, memoryViolations, MIB } from '../memory-bound';
import { outcomeCounts, overloadViolations } from '../refusals';
import { criterion, noViolations, type ChaosEnv } from '../scenario';
import { sleep } from '../timeline';
import { makeRequests, type RequestRecord, type RequestSpec } from '../workload';
import { defineScenario } from './helpers';

const KEY_STREAMS = 2;
const MAX_STREAMS = 4;
const MAX_QUEUED = 2;
const QUEUE_WAIT_MS = 2000;
const MAX_PROMPT_BYTES = MIB;
/** The coordinator's admission flags (cli/admission-flags.ts) and prompt byte limit. */
export const OVERLOAD_LIMITS: readonly string[] = [
  '--key-streams', String(KEY_STREAMS),
  '--max-streams', String(MAX_STREAMS),
  '--max-queued-streams', String(MAX_QUEUED),
  '--queue-wait-ms', String(QUEUE_WAIT_MS),
  '--max-prompt-bytes', String(MAX_PROMPT_BYTES),
];
const KEYS = 4;
/** 10x what the limits admit at once (running + queued). */
export const OVERLOAD_REQUESTS = 10 * (MAX_STREAMS + MAX_QUEUED);
const WAVES = 10;
const OVERSIZED_PROMPT_BYTES = 10 * MIB;
/** Waves that carry one oversized prompt (in place of an ordinary request). */
const OVERSIZED_WAVES: readonly number[] = [0, 4, 8];
const OVERSIZED_LANE_BASE = 1000;
const LATENCY_FACTOR = 2;
const P99 = 99;
const RSS_ALLOWANCE_BYTES = 256 * MIB;
const MIN_WAVE_INTERVAL_MS = 200;
/** The waves span this many reference runs. */
const OVERLOAD_SPAN_REFERENCES = 2;

/** The reference: as many streams as run at once, two per key. */
function overloadReference(env: ChaosEnv): RequestSpec[] {
  const keys = clientKeyNames(MAX_STREAMS / KEY_STREAMS);
  return makeRequests(MAX_STREAMS, 4, 9, 64, env.vocabSize, env.seed).map((r) => ({ ...r, keyName: keys[Math.floor(r.lane / KEY_STREAMS)] }));
}

/** Wave `wave`'s requests: reference prompts round-robin over the keys, one oversized text prompt in some waves. */
export function overloadWave(reference: readonly RequestSpec[], wave: number, perWave: number, keys: readonly string[]): RequestSpec[] {
  return Array.from({ length: perWave }, (_, i) => {
    const n = wave * perWave + i;
    const keyName = keys[n % keys.length];
    if (i === 0 && OVERSIZED_WAVES.includes(wave)) {
      return { lane: OVERSIZED_LANE_BASE + wave, promptIds: [], promptText: 'a'.repeat(OVERSIZED_PROMPT_BYTES), maxTokens: 8, keyName };
    }
    return { ...reference[n % reference.length], keyName };
  });
}

function p99Of(records: readonly RequestRecord[]): number | undefined {
  return percentile(interTokenGapsMs(records.filter((r) => r.completed !== undefined)), P99);
}

export const S12 = defineScenario({
  id: 'S12',
  title: 'Overload: 10x the admission limits from 4 keys, with 10 MiB prompts',
  passWhen: 'admitted streams keep inter-token p99 <= 2x unloaded; the rest get RESOURCE_EXHAUSTED (oversized prompts: or INVALID_ARGUMENT), nothing else; admitted outputs identical; every node\'s RSS within its fault-free peak + 256 MiB',
  topology: { workers: 3, coordinators: 1, secure: true, clientKeys: KEYS },
  coordinatorArgs: OVERLOAD_LIMITS,
  allMustComplete: false,
  requests: overloadReference,
  async run(ctx) {
    const keys = clientKeyNames(KEYS);
    const referenceMs = ctx.referenceWindowMs.toMs - ctx.referenceWindowMs.fromMs;
    const waveIntervalMs = Math.max(MIN_WAVE_INTERVAL_MS, Math.round((OVERLOAD_SPAN_REFERENCES * referenceMs) / WAVES));
    const perWave = OVERLOAD_REQUESTS / WAVES;
    const load = ctx.workload();
    const fromMs = ctx.timeline.record('fault', `overload: ${OVERLOAD_REQUESTS} requests from ${KEYS} keys in ${WAVES} waves ${waveIntervalMs} ms apart`).atMs;
    const waves: Promise<RequestRecord[]>[] = [];
    for (let wave = 0; wave < WAVES; wave++) {
      waves.push(load.runOnce(overloadWave(ctx.requests, wave, perWave, keys)));
      await sleep(waveIntervalMs);
    }
    const records = (await Promise.all(waves)).flat();
    const toMs = ctx.timeline.record('heal', 'every overload request ended').atMs;

    const admitted = records.filter((r) => r.completed !== undefined);
    const refused = records.length - admitted.length;
    const unloaded = ctx.referenceLatency.p99Ms ?? undefined;
    const loaded = p99Of(records);
    const bound = unloaded === undefined ? undefined : LATENCY_FACTOR * unloaded;
    const peaks = memoryPeaks(ctx.observer.rss, ctx.referenceWindowMs, { fromMs, toMs }, RSS_ALLOWANCE_BYTES);
    const counts = outcomeCounts(records);
    const oversized = records.filter((r) => r.spec.promptText !== undefined).map((r) => r.attempts.at(-1)?.error?.code ?? 'completed');
    return {
      records,
      criteria: [
        criterion(
          `the overload was one: at least ${MAX_STREAMS} admitted and some refused`,
          admitted.length >= MAX_STREAMS && refused > 0,
          `${records.length} requests: ${[...counts].map(([c, n]) => `${c} ${n}`).join(', ')}`,
        ),
        criterion(
          `admitted streams' inter-token p99 <= ${LATENCY_FACTOR}x unloaded`,
          loaded !== undefined && bound !== undefined && loaded <= bound,
          `p99 ${loaded === undefined ? '?' : Math.round(loaded)} ms over ${admitted.length} admitted streams; unloaded (the reference's ${ctx.requests.length} streams, all the limits run at once) ${unloaded ?? '?'} ms, bound ${bound ?? '?'} ms`,
        ),
        noViolations(
          'every other request refused with RESOURCE_EXHAUSTED (oversized prompts: or INVALID_ARGUMENT), no other error',
          overloadViolations(records),
          `${refused} refused; the ${oversized.length} 10 MiB prompts: ${oversized.join(', ')} (the coordinator's message limit, ${MAX_PROMPT_BYTES} prompt bytes + 1 MiB, refuses them with RESOURCE_EXHAUSTED from the length prefix, before reading them)`,
        ),
        noViolations(`every node's RSS within its fault-free peak + ${RSS_ALLOWANCE_BYTES / MIB} MiB`, memoryViolations(peaks), describePeaks(peaks)),
      ],
      extra: {
        requests: records.length,
        admitted: admitted.length,
        refused,
        waveIntervalMs,
        interTokenP99Ms: loaded === undefined ? null : Math.round(loaded),
        referenceInterTokenP99Ms: unloaded ?? null,
        oversizedOutcomes: oversized.join(', '),
      },
    };
  },
});
