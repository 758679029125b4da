/**
 * Runs one scenario end to end: the oracle (each request's tokens from an independent in-process
 * run of the whole model, oracle.ts), a fresh topology and cluster, the fault-free cluster run of
 * the scenario's requests (checked against the oracle, and the baseline for latency, memory and
 * link throughput), the faulted run, the common invariants and the scenario's own criteria, the
 * measures, and the teardown, which runs whatever happened (a failed step is reported as the
 * scenario's failure, with the nodes' log lines as evidence).
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ChaosCluster } from './cluster';
import { Faults } from './faults';
import { incomplete, indexViolations, outputMismatches, partialOutputViolations } from './invariants';
import { detectionMs, epochAt, latencySummary, nextTokenMs, recoveryMs, reshards, round } from './measures';
import { Topology, removeStale } from './netns';
import { Observer } from './observer';
import { inProcessOracle } from './oracle';
import { LinkMeter, type LinkSample } from './link-meter';
import { criterion, noViolations, type ChaosEnv, type Criterion, type Extra, type FaultedRun, type Scenario, type ScenarioContext } from './scenario';
import { Timeline, type TimelineEntry } from './timeline';
import { Workload, type RequestAccess, type RequestRecord } from './workload';

export type ScenarioStatus = 'pass' | 'fail' | 'skipped';

export interface ScenarioMeasures {
  readonly requests: number;
  readonly completed: number;
  /** null when nothing completed to compare. */
  readonly outputsIdentical: boolean | null;
  /** Plan epoch delta over the faulted run. */
  readonly reshards: number | null;
  readonly detectionMs: number | null;
  readonly recoveryMs: number | null;
  readonly nextTokenMs: number | null;
  readonly interTokenP50Ms: number | null;
  readonly interTokenP95Ms: number | null;
  readonly referenceInterTokenP50Ms: number | null;
  readonly referenceInterTokenP95Ms: number | null;
  readonly faultedRunMs: number | null;
}

export interface ScenarioResult {
  readonly id: string;
  readonly title: string;
  readonly passWhen: string;
  readonly status: ScenarioStatus;
  /** Why it was skipped, or a summary of what failed. */
  readonly reason: string | null;
  readonly criteria: Criterion[];
  readonly measures: ScenarioMeasures | null;
  readonly extra: Extra;
  /** Faults and heals, ms from the start of the faulted run. */
  readonly faults: { atMs: number; kind: string; text: string }[];
  /** The nodes' log lines around the faults ("  t s node: line"). */
  readonly evidence: string[];
  readonly runDir: string | null;
  /** The whole scenario's wall time (oracle, cluster start, both runs, teardown); set by main.ts. */
  readonly wallMs?: number;
}

const REFERENCE_DEADLINE_MS = 180_000;
const DEFAULT_REQUEST_DEADLINE_MS = 180_000;
const CLUSTER_READY_TIMEOUT_MS = 90_000;
const EVIDENCE_LINES = 80;
/** Every node's link byte counters are sampled this often during the reference run. */
const LINK_SAMPLE_MS = 250;
const EVIDENCE_PATTERN = /plan \d+|published|fenc|answer|suspect|lease|fail|broke|leader|leading|standing by|stepped|standby|exited|refus|reject|regist|etcd|error|unavailable|outage|timed out|deadline/i;

export function skippedResult(scenario: Scenario, reason: string): ScenarioResult {
  return { id: scenario.id, title: scenario.title, passWhen: scenario.passWhen, status: 'skipped', reason, criteria: [], measures: null, extra: {}, faults: [], evidence: [], runDir: null };
}

export async function runScenario(scenario: Scenario, env: ChaosEnv, log: (line: string) => void): Promise<ScenarioResult> {
  const unsupported = scenario.unsupported(env.caps);
  if (unsupported !== undefined) return skippedResult(scenario, unsupported);

  const runDir = join(env.outDir, 'runs', scenario.id);
  rmSync(runDir, { recursive: true, force: true });
  mkdirSync(runDir, { recursive: true });
  const timeline = new Timeline(join(runDir, 'timeline.jsonl'));
  const topology = new Topology(env.subnet);
  let cluster: ChaosCluster | undefined;
  let observer: Observer | undefined;
  let faults: Faults | undefined;
  let faultedStartMs: number | undefined;
  const base = { id: scenario.id, title: scenario.title, passWhen: scenario.passWhen, runDir };
  try {
    const stale = removeStale();
    if (stale.length > 0) log(`removed a stale topology: ${stale.join(', ')}`);
    const requests = scenario.requests(env);
    const modelDir = scenario.placement === 'experts' ? env.expertsModelDir : env.modelDir;
    const oracleFromMs = timeline.nowMs();
    const oracle = await inProcessOracle(modelDir, requests);
    log(`oracle: ${oracle.size} requests decoded in process (whole model, one StageEngine) in ${((timeline.nowMs() - oracleFromMs) / 1000).toFixed(1)} s`);
    topology.create();
    cluster = new ChaosCluster(
      topology,
      {
        workers: scenario.topology.workers,
        coordinators: scenario.topology.coordinators,
        ...(scenario.topology.secure === true ? { secure: { clientKeys: scenario.topology.clientKeys ?? 1 } } : {}),
        ...(scenario.coordinatorArgs === undefined ? {} : { coordinatorArgs: scenario.coordinatorArgs }),
        placement: scenario.placement ?? 'layers',
        ...(scenario.topology.proxied === true ? { proxied: { seed: env.seed } } : {}),
        ...(scenario.topology.singlePacketSkbs === true ? { singlePacketSkbs: true } : {}),
        modelDir,
        modelsDir: env.modelsDir,
        boraJs: env.boraJs,
        leaseTtlMs: env.leaseTtlMs,
        replicas: env.replicas,
        readyTimeoutMs: CLUSTER_READY_TIMEOUT_MS,
      },
      timeline,
      runDir,
    );
    const first = await cluster.start();
    log(`cluster serving plan ${first.planEpoch}: ${first.workers.map((w) => `${w.id}[${w.layerStart},${w.layerEnd})`).join(' ')}`);
    observer = new Observer(cluster, timeline);
    await observer.start();
    faults = new Faults(env.caps, cluster, timeline);
    const coordinators = (): string[] => cluster!.clientAddresses();
    const access: RequestAccess = (spec) => cluster!.clientAccess(spec.keyName);

    timeline.record('phase', 'reference run');
    const referenceFromMs = timeline.nowMs();
    const meters = new Map([...cluster.pids().keys()].map((name) => [name, new LinkMeter(cluster!.node(name).hostVeth, () => timeline.nowMs(), LINK_SAMPLE_MS)]));
    const referenceRecords = await new Workload(coordinators, { retryMidStream: false, deadlineMs: REFERENCE_DEADLINE_MS }, timeline, access).runOnce(requests).finally(() => {
      for (const meter of meters.values()) meter.stop();
    });
    const referenceToMs = timeline.nowMs();
    const referenceLinks = new Map([...meters].map(([name, meter]) => [name, meter.samples as readonly LinkSample[]]));
    const refFailures = incomplete(referenceRecords);
    if (refFailures.length > 0) throw new Error(`the fault-free reference run did not complete: ${refFailures.join('; ')}`);
    const refIndex = indexViolations(referenceRecords);
    if (refIndex.length > 0) throw new Error(`the fault-free reference run broke token order: ${refIndex.join('; ')}`);
    // Outputs are compared with the oracle; a lane without one (a text prompt) with the fault-free cluster run.
    const reference = new Map<number, readonly number[]>(referenceRecords.map((r) => [r.lane, r.completed!.tokens.map((t) => t.tokenId)]));
    const referenceVsOracle = outputMismatches(referenceRecords, oracle);
    for (const [lane, tokens] of oracle) reference.set(lane, tokens);
    log(`reference run: ${referenceRecords.length} requests in ${((referenceToMs - referenceFromMs) / 1000).toFixed(1)} s; ${referenceVsOracle.length === 0 ? 'identical to the oracle' : `DIFFERS from the oracle: ${referenceVsOracle.join('; ')}`}`);

    faultedStartMs = timeline.record('phase', 'faulted run').atMs;
    const epochBefore = epochAt(observer.etcd, faultedStartMs);
    const policy = { ...scenario.client, deadlineMs: scenario.client.deadlineMs ?? DEFAULT_REQUEST_DEADLINE_MS };
    const ctx: ScenarioContext = {
      env,
      cluster,
      faults,
      observer,
      timeline,
      requests,
      reference,
      epochBefore,
      referenceWindowMs: { fromMs: referenceFromMs, toMs: referenceToMs },
      referenceLinks,
      referenceLatency: latencySummary(referenceRecords),
      workload: () => new Workload(coordinators, policy, timeline, access),
    };
    const run = await scenario.run(ctx);
    const endMs = timeline.nowMs();
    faults.healAll();

    const criteria = [
      noViolations('the fault-free cluster run is identical to the in-process oracle', referenceVsOracle, `${oracle.size} lanes, token ids identical`),
      ...commonCriteria(scenario, run.records, reference),
      ...run.criteria,
    ];
    const measures = measure(run, observer, timeline, { fromMs: faultedStartMs, toMs: endMs }, epochBefore, referenceRecords, reference);
    const failed = criteria.filter((c) => !c.pass);
    const evidence = gatherEvidence(join(runDir, 'logs'), faultedStartMs - 1000, timeline.nowMs());
    writeFileSync(join(runDir, 'records.json'), JSON.stringify({ reference: referenceRecords, faulted: run.records }, null, 1));
    return {
      ...base,
      status: failed.length === 0 ? 'pass' : 'fail',
      reason: failed.length === 0 ? null : failed.map((c) => `${c.name}: ${c.detail}`).join(' | '),
      criteria,
      measures,
      extra: run.extra ?? {},
      faults: faultEntries(timeline.entries, faultedStartMs),
      evidence,
    };
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    log(`${scenario.id} aborted: ${message}`);
    faults?.healAll();
    return {
      ...base,
      status: 'fail',
      reason: `the run could not complete: ${message}`,
      criteria: [criterion('the scenario ran to the end', false, message)],
      measures: null,
      extra: {},
      faults: faultEntries(timeline.entries, faultedStartMs ?? 0),
      evidence: gatherEvidence(join(runDir, 'logs'), (faultedStartMs ?? 0) - 1000, timeline.nowMs()),
    };
  } finally {
    faults?.healAll();
    await observer?.stop().catch(() => undefined);
    await cluster?.stop().catch(() => undefined);
    topology.destroy();
  }
}

function commonCriteria(scenario: Scenario, records: readonly RequestRecord[], reference: ReadonlyMap<number, readonly number[]>): Criterion[] {
  const completed = records.filter((r) => r.completed !== undefined).length;
  const out: Criterion[] = [];
  if (scenario.allMustComplete) out.push(noViolations('all requests complete', incomplete(records), `${records.length} of ${records.length}`));
  else out.push(criterion('some requests complete', completed > 0, `${completed} of ${records.length} completed`));
  out.push(noViolations('completed outputs identical to the oracle', outputMismatches(records, reference), `${completed} compared, token ids identical`));
  out.push(noViolations('no duplicate or missing token', indexViolations(records), 'token indices consecutive from 0 in every stream'));
  const broken = records.reduce((n, r) => n + r.attempts.filter((a) => !a.finished && a.tokens.length > 0).length, 0);
  if (broken > 0) out.push(noViolations('broken streams showed only reference tokens', partialOutputViolations(records, reference), `${broken} broken stream(s), each a prefix of its reference`));
  return out;
}

function measure(
  run: FaultedRun,
  observer: Observer,
  timeline: Timeline,
  window: { fromMs: number; toMs: number },
  epochBefore: number,
  referenceRecords: readonly RequestRecord[],
  reference: ReadonlyMap<number, readonly number[]>,
): ScenarioMeasures {
  const { fromMs, toMs } = window;
  const records = run.records;
  const completed = records.filter((r) => r.completed !== undefined);
  const arrivals = records.flatMap((r) => r.attempts.flatMap((a) => a.tokens.map((t) => t.atMs))).sort((a, b) => a - b);
  const latency = latencySummary(records);
  const refLatency = latencySummary(referenceRecords);
  const faultAt = run.faultAtMs;
  const detection = run.detectionMs !== undefined ? run.detectionMs : faultAt === undefined ? null : round(detectionMs(observer.statuses, faultAt, epochBefore));
  return {
    requests: records.length,
    completed: completed.length,
    outputsIdentical: completed.length === 0 ? null : outputMismatches(records, reference).length === 0,
    reshards: reshards(observer.etcd, fromMs, timeline.nowMs()),
    detectionMs: detection,
    recoveryMs: faultAt === undefined ? null : round(recoveryMs(arrivals, faultAt, run.recoveryWindowEndMs ?? toMs)),
    nextTokenMs: faultAt === undefined ? null : round(nextTokenMs(arrivals, faultAt)),
    interTokenP50Ms: latency.p50Ms,
    interTokenP95Ms: latency.p95Ms,
    referenceInterTokenP50Ms: refLatency.p50Ms,
    referenceInterTokenP95Ms: refLatency.p95Ms,
    faultedRunMs: Math.round(toMs - fromMs),
  };
}

function faultEntries(entries: readonly TimelineEntry[], fromMs: number): { atMs: number; kind: string; text: string }[] {
  return entries.filter((e) => e.kind === 'fault' || e.kind === 'heal' || e.kind === 'process').filter((e) => e.atMs >= fromMs).map((e) => ({ atMs: Math.round(e.atMs - fromMs), kind: e.kind, text: e.text }));
}

/**
 * Log lines of every node stamped within [fromMs, toMs] that say something about faults, plans,
 * leases or errors (etcd's own: warnings and errors only). A line repeating the one before it
 * from the same node, numbers aside (a retry loop), is counted instead of listed again.
 */
export function gatherEvidence(logDir: string, fromMs: number, toMs: number): string[] {
  if (!existsSync(logDir)) return [];
  const lines: { atMs: number; text: string; repeats: number }[] = [];
  for (const file of readdirSync(logDir).filter((f) => f.endsWith('.log'))) {
    const node = file.replace(/\.log$/, '');
    let previous: { key: string; entry: { repeats: number } } | undefined;
    for (const line of readFileSync(join(logDir, file), 'utf8').split('\n')) {
      const m = /^\s*(\d+\.\d+) s (.*)$/.exec(line);
      if (m === null) continue;
      const atMs = Number(m[1]) * 1000;
      const text = m[2];
      if (atMs < fromMs || atMs > toMs || text.includes('[harness] started')) continue;
      const relevant = node === 'etcd' ? / [WEF] \| |\[harness\]/.test(text) : EVIDENCE_PATTERN.test(text);
      if (!relevant) continue;
      const key = text.replace(/\d+/g, '#');
      if (previous?.key === key) {
        previous.entry.repeats += 1;
        continue;
      }
      const entry = { atMs, text: `${m[1].padStart(8)} s ${node}: ${text.slice(0, 300)}`, repeats: 0 };
      lines.push(entry);
      previous = { key, entry };
    }
  }
  lines.sort((a, b) => a.atMs - b.atMs);
  const rendered = lines.map((l) => (l.repeats === 0 ? l.text : `${l.text} (and ${l.repeats} more like it)`));
  return rendered.length <= EVIDENCE_LINES ? rendered : [...rendered.slice(0, EVIDENCE_LINES), `... ${rendered.length - EVIDENCE_LINES} more lines in ${logDir}`];
}
