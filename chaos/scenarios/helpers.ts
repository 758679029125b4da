/** Small pieces the scenarios share: their common header, requests, picking targets, waiting, reading membership from the etcd log. */
import type { ClusterStatus } from '../../common/wire/messages';
import type { EtcdEvent, WorkerSample } from '../observer';
import { DEFAULT_NEW_TOKENS, DEFAULT_STREAMS, type ChaosEnv, type Scenario, type ScenarioContext } from '../scenario';
import { sleep } from '../timeline';
import { makeRequests, type RequestRecord, type RequestSpec, type Workload } from '../workload';
import { basicsMissing } from './requirements';

type HeaderField = 'topology' | 'client' | 'allMustComplete' | 'unsupported' | 'requests';

/** A scenario as written: what it is and does, and only the header fields where it differs from the common ones. */
export type ScenarioSpec = Omit<Scenario, HeaderField> & Partial<Pick<Scenario, HeaderField>>;

/**
 * The header most scenarios share: 3 workers and one coordinator, a client that does not retry a
 * broken stream, every stream must complete, the basic capabilities, the standard requests.
 */
const COMMON_HEADER: Pick<Scenario, HeaderField> = {
  topology: { workers: 3, coordinators: 1 },
  client: { retryMidStream: false },
  allMustComplete: true,
  unsupported: basicsMissing,
  requests: (env) => standardRequests(env),
};

/** A scenario: the common header, overridden by whatever `spec` sets. */
export function defineScenario(spec: ScenarioSpec): Scenario {
  return { ...COMMON_HEADER, ...spec };
}

/** 16 greedy streams of 64 new tokens, prompts of 4, 13, 22, ... 139 tokens. */
export function standardRequests(env: ChaosEnv, maxTokens = DEFAULT_NEW_TOKENS): RequestSpec[] {
  return makeRequests(DEFAULT_STREAMS, 4, 9, maxTokens, env.vocabSize, env.seed);
}

/** A quarter of the tokens the requests will produce: "mid-generation". */
export function quarterOfTokens(ctx: ScenarioContext): number {
  return Math.floor(ctx.requests.reduce((n, r) => n + r.maxTokens, 0) / 4);
}

/** The worker serving stage `index` (clamped) of the leader's current plan. */
export async function stageWorker(ctx: ScenarioContext, index: 'middle' | number): Promise<{ name: string; status: ClusterStatus; stageIndex: number }> {
  const leader = await ctx.cluster.leaderStatus();
  if (leader === undefined) throw new Error('no coordinator serves');
  const stages = leader.status.workers.filter((w) => w.layerEnd > w.layerStart).sort((a, b) => a.layerStart - b.layerStart);
  const stageIndex = index === 'middle' ? Math.floor(stages.length / 2) : Math.min(index, stages.length - 1);
  return { name: stages[stageIndex].id, status: leader.status, stageIndex };
}

/** Polls `condition` every 100 ms; resolves with the time it held, or undefined after `timeoutMs`. */
export async function waitUntil(ctx: ScenarioContext, timeoutMs: number, condition: () => boolean | Promise<boolean>): Promise<number | undefined> {
  const deadline = ctx.timeline.nowMs() + timeoutMs;
  for (;;) {
    if (await condition()) return ctx.timeline.nowMs();
    if (ctx.timeline.nowMs() > deadline) return undefined;
    await sleep(100);
  }
}

function isMemberKey(key: string, worker: string): boolean {
  return key.endsWith(`/members/${worker}`);
}

/** The lease of `members/<worker>` at `atMs`, or undefined when it has none. */
export function memberLease(events: readonly EtcdEvent[], worker: string, atMs: number): string | undefined {
  let lease: string | undefined;
  for (const e of events) {
    if (e.atMs > atMs || !isMemberKey(e.key, worker)) continue;
    lease = e.type === 'put' ? e.leaseId : undefined;
  }
  return lease;
}

/** When `members/<worker>` was deleted (lease expired or revoked) after `afterMs`. */
export function memberDeletedAt(events: readonly EtcdEvent[], worker: string, afterMs: number): number | undefined {
  return events.find((e) => e.atMs >= afterMs && e.type === 'delete' && isMemberKey(e.key, worker))?.atMs;
}

/** When `members/<worker>` was put on a lease other than `oldLease` after `afterMs` (a re-registration). */
export function memberRejoinedAt(events: readonly EtcdEvent[], worker: string, afterMs: number, oldLease: string | undefined): number | undefined {
  return events.find((e) => e.atMs >= afterMs && e.type === 'put' && isMemberKey(e.key, worker) && e.leaseId !== oldLease)?.atMs;
}

/** First sample after `afterMs` in which `worker` serves a range of an epoch above `epoch`. */
export function servingAgainAt(samples: readonly WorkerSample[], worker: string, afterMs: number, epoch: number): number | undefined {
  return samples.find((s) => s.worker === worker && s.atMs >= afterMs && s.reply?.serving === true && s.reply.hasRange && s.reply.planEpoch > epoch)?.atMs;
}

/** Last sample before `beforeMs` in which `worker` said it was serving. */
export function lastServingBefore(samples: readonly WorkerSample[], worker: string, fromMs: number, beforeMs: number): WorkerSample | undefined {
  let last: WorkerSample | undefined;
  for (const s of samples) if (s.worker === worker && s.atMs >= fromMs && s.atMs < beforeMs && s.reply?.serving === true) last = s;
  return last;
}

export function ms(value: number | undefined): string {
  return value === undefined ? 'never' : `${Math.round(value)} ms`;
}

/** Requests under way; `done` settles when they have all ended. (An object, not a bare promise, so that awaiting the start does not await the end.) */
export interface UnderWay {
  readonly done: Promise<RequestRecord[]>;
}

const LOAD_START_TIMEOUT_MS = 120_000;

/** Sends each request once; resolves once a quarter of their tokens arrived ("mid-generation"). */
export async function onceToMidGeneration(ctx: ScenarioContext, load: Workload): Promise<UnderWay> {
  const done = load.runOnce(ctx.requests);
  const reached = await Promise.race([load.untilTokens(quarterOfTokens(ctx)).then(() => true), done.then(() => false)]);
  if (!reached) throw new Error('the requests ended before the fault point (a quarter of their tokens)');
  return { done };
}

/** Keeps every lane busy; resolves once a quarter of one round's tokens arrived. */
export async function lanesUnderWay(ctx: ScenarioContext, load: Workload): Promise<UnderWay> {
  const done = load.runLanes(ctx.requests);
  const reached = await Promise.race([load.untilTokens(quarterOfTokens(ctx)).then(() => true), sleep(LOAD_START_TIMEOUT_MS).then(() => false)]);
  if (!reached) {
    load.stop();
    await done;
    throw new Error(`no load: a quarter of the tokens did not arrive within ${LOAD_START_TIMEOUT_MS} ms`);
  }
  return { done };
}
