/**
 * The engine thread's entry point: holds the worker's StageEngines and LocalExperts by handle and
 * serves EngineRequests in order, on three lanes: expert runs (RunExperts served for other
 * stages) on one, loads of new stages and expert sets on another, everything else on the third,
 * each lane one request at a time. A stage whose experts are spread waits on other workers'
 * RunExperts in mid-forward; were expert runs queued behind it, two workers each waiting on the
 * other's experts would deadlock. Float32 outputs go back as transfers.
 */
import { basename } from 'node:path';
import { parentPort, workerData } from 'node:worker_threads';
import { LocalExperts } from '../common/engine/experts';
import { StageEngine } from '../common/engine/stage-engine';
import { InternalError } from '../common/errors';
import { sequenceId } from '../common/ids';
import { openModel } from '../common/model/open-model';
import type { WeightSource } from '../common/model/weight-source';
import { toThreadError } from '../common/pool/thread-errors';
import { type NodeSecurity, nodeSecurityFromSpec } from '../common/security/node-security';
import type { EngineProgressMessage, EngineReply, EngineReplyValue, EngineRequest, EngineThreadData, RemoteExpertsSpec, WeightSourceSpec } from './engine-protocol';
import { countingSource } from './load-progress';
import { GrpcExpertTransport } from './expert-client';
import { ExpertStatsCollector } from './expert-stats';
import { RemoteExperts, type LocalHolder } from './remote-experts';
import { finalNormSpec } from '../common/model/weights';
import { PrefixStage } from './prefix-stage';
import { RemoteWeightSource } from './remote-weights';

const stages = new Map<number, StageEngine>();
/** Each stage's prefix cache (off unless the stage was loaded with a budget), by stage handle. */
const prefixes = new Map<number, PrefixStage>();
const expertSets = new Map<number, LocalExperts>();
/** Stages loaded with their experts spread: their dispatcher and its figures, by stage handle. */
const remotes = new Map<number, { backend: RemoteExperts; stats: ExpertStatsCollector }>();
let nextHandle = 1;
let security: NodeSecurity | undefined;

/** This thread's transport security, made on first use from the files the worker gave it. */
function transport(): NodeSecurity {
  security ??= nodeSecurityFromSpec((workerData as EngineThreadData | undefined)?.transport ?? { kind: 'insecure' });
  return security;
}

async function openSource(spec: WeightSourceSpec): Promise<{ source: WeightSource; close(): void }> {
  if (spec.kind === 'local') return { source: await openModel(spec.dir), close: () => undefined };
  const remote = await RemoteWeightSource.connect(spec.address, spec.modelId, transport(), spec.expectedDigests);
  return { source: remote, close: () => remote.close() };
}

function stageOf(handle: number): StageEngine {
  const stage = stages.get(handle);
  if (stage === undefined) throw new InternalError(`engine thread: no stage ${handle}`);
  return stage;
}

function statsOf(stage: StageEngine, handle: number) {
  const prefix = prefixes.get(handle);
  return { sequenceCount: stage.sequenceCount, kvCacheBytes: stage.kvCacheBytes, ...(prefix?.enabled === true ? { prefix: prefix.stats() } : {}) };
}

/** The model's name in prefix keys, the same on every stage: its id (a local directory is named by it). */
function modelTag(spec: WeightSourceSpec): string {
  return spec.kind === 'local' ? basename(spec.dir) : spec.modelId;
}

function localHolder(spec: RemoteExpertsSpec): LocalHolder | undefined {
  if (spec.self === undefined) return undefined;
  const experts = expertSets.get(spec.self.experts);
  if (experts === undefined) throw new InternalError(`engine thread: no expert set ${spec.self.experts}`);
  return { address: spec.self.address, experts };
}

function remoteExperts(spec: RemoteExpertsSpec): { backend: RemoteExperts; stats: ExpertStatsCollector } {
  const stats = new ExpertStatsCollector();
  const backend = new RemoteExperts(spec, { transport: new GrpcExpertTransport(transport()), local: localHolder(spec), deadlineMs: spec.deadlineMs, hooks: stats.hooks });
  return { backend, stats };
}

async function handle(request: EngineRequest): Promise<EngineReplyValue> {
  switch (request.op) {
    case 'loadStage': {
      const started = performance.now();
      const { source: opened, close } = await openSource(request.source);
      // Progress to the main thread (load-progress.ts): layers as they load, bytes as they are read.
      const progress = { layersLoaded: 0, layersTotal: request.range.end - request.range.start, bytesLoaded: 0, done: false };
      const report = (): void => parentPort!.postMessage({ progress: { ...progress } } satisfies EngineProgressMessage);
      const source = countingSource(opened, (bytes) => void (progress.bytesLoaded += bytes));
      report();
      try {
        const remote = request.experts === undefined ? undefined : remoteExperts(request.experts);
        let stage: StageEngine;
        const onLayerLoaded = (done: number): void => {
          progress.layersLoaded = done;
          report();
        };
        try {
          stage = await StageEngine.load(source, request.range, { compute: request.compute, experts: remote?.backend, onLayerLoaded });
        } catch (err) {
          remote?.backend.close();
          throw err;
        }
        // Spread experts would be asked for under a plan their holders may not serve yet.
        if (remote === undefined) await stage.warmUp();
        const handleId = nextHandle++;
        stages.set(handleId, stage);
        // The last stage also keeps the final norm, to pool embeddings with.
        const c = source.config;
        const finalNorm = stage.isLast ? { weight: await source.readF32(finalNormSpec(c).name, finalNormSpec(c).shape), eps: c.rmsNormEps } : undefined;
        prefixes.set(handleId, new PrefixStage(stage, request.prefixCacheBytes ?? 0, modelTag(request.source), finalNorm));
        if (remote !== undefined) remotes.set(handleId, remote);
        progress.done = true;
        report();
        return { op: 'loadStage', stage: handleId, config: source.config, loadSeconds: (performance.now() - started) / 1000 };
      } finally {
        close();
      }
    }
    case 'loadExperts': {
      const started = performance.now();
      const { source, close } = await openSource(request.source);
      try {
        const byLayer = new Map(request.holdings.map((h) => [h.layer, h.experts]));
        const experts = await LocalExperts.load(source, [...byLayer.keys()], (layer) => byLayer.get(layer) ?? [], request.compute);
        const handleId = nextHandle++;
        expertSets.set(handleId, experts);
        return { op: 'loadExperts', experts: handleId, config: source.config, loadSeconds: (performance.now() - started) / 1000 };
      } finally {
        close();
      }
    }
    case 'setExperts': {
      stageOf(request.stage);
      const remote = remotes.get(request.stage);
      if (remote === undefined) throw new InternalError(`engine thread: stage ${request.stage} was loaded with its experts, not spread`);
      remote.backend.update(request.experts, localHolder(request.experts));
      return { op: 'setExperts' };
    }
    case 'forward': {
      const stage = stageOf(request.stage);
      // A failed step keeps its figures (holder failures above all) for the next reply.
      const prefix = prefixes.get(request.stage);
      const output = request.context === undefined || prefix === undefined ? await stage.forward(request.input) : await prefix.forward(request.input, request.context);
      const experts = remotes.get(request.stage)?.stats.take();
      return { op: 'forward', output, stats: statsOf(stage, request.stage), ...(experts === undefined ? {} : { experts }) };
    }
    case 'release': {
      const stage = stageOf(request.stage);
      prefixes.get(request.stage)?.forget(request.ids === 'all' ? 'all' : request.ids.map(sequenceId));
      const released = request.ids === 'all' ? stage.releaseAll() : request.ids.filter((id) => stage.release(sequenceId(id))).length;
      return { op: 'release', released, stats: statsOf(stage, request.stage) };
    }
    case 'positions': {
      const stage = stageOf(request.stage);
      return { op: 'positions', positions: request.ids.map((id) => stage.nextPosition(sequenceId(id))) };
    }
    case 'snapshotKv': {
      const stage = stageOf(request.stage);
      const snaps = stage.snapshotCaches(request.ids.map(sequenceId), request.layers);
      return { op: 'snapshotKv', entries: [...snaps].map(([id, snapshot]) => ({ id, layerStart: request.layers.start, snapshot })) };
    }
    case 'restoreKv': {
      const stage = stageOf(request.stage);
      for (const e of request.entries) stage.restoreCache(sequenceId(e.id), e.layerStart, e.snapshot);
      return { op: 'restoreKv', stats: statsOf(stage, request.stage) };
    }
    case 'retain': {
      const stage = stageOf(request.stage);
      prefixes.get(request.stage)?.retainOnly(request.ids.map(sequenceId));
      const released = stage.retainOnly(request.ids.map(sequenceId));
      return { op: 'retain', released, stats: statsOf(stage, request.stage) };
    }
    case 'runExperts': {
      const experts = expertSets.get(request.experts);
      if (experts === undefined) throw new InternalError(`engine thread: no expert set ${request.experts}`);
      return { op: 'runExperts', outputs: await experts.run(request.layer, request.calls) };
    }
    case 'close': {
      await stages.get(request.handle)?.close();
      remotes.get(request.handle)?.backend.close();
      if (expertSets.has(request.handle)) await expertLane; // no run of this set is left in flight
      await expertSets.get(request.handle)?.close();
      stages.delete(request.handle);
      prefixes.delete(request.handle);
      remotes.delete(request.handle);
      expertSets.delete(request.handle);
      return { op: 'close' };
    }
  }
}

function transfers(value: EngineReplyValue): ArrayBuffer[] {
  if (value.op === 'forward') return [value.output.hidden, value.output.logits, value.output.pooled].filter((a) => a !== undefined).map((a) => a!.buffer as ArrayBuffer);
  if (value.op === 'runExperts') return value.outputs.map((o) => o.buffer as ArrayBuffer);
  return [];
}

// Each lane serves its requests strictly one after another: a stage is not re-entrant.
let stageLane: Promise<void> = Promise.resolve();
let expertLane: Promise<void> = Promise.resolve();
// Loading a new range (a re-plan, a standby) goes on beside the forwards of the ranges served
// now: reading weights and creating sessions are asynchronous, so forwards interleave with it.
let loadLane: Promise<void> = Promise.resolve();
parentPort!.on('message', (message: { id: number; request: EngineRequest }) => {
  const serve = async (): Promise<void> => {
    let reply: EngineReply;
    try {
      const value = await handle(message.request);
      reply = { id: message.id, ok: true, value };
      const list = [...new Set(transfers(value))];
      try {
        parentPort!.postMessage(reply, list);
      } catch {
        parentPort!.postMessage(reply); // a buffer onnxruntime owns cannot be transferred: copy it
      }
    } catch (err) {
      reply = { id: message.id, ok: false, error: toThreadError(err) };
      parentPort!.postMessage(reply);
    }
  };
  if (message.request.op === 'runExperts') expertLane = expertLane.then(serve);
  else if (message.request.op === 'loadStage' || message.request.op === 'loadExperts') loadLane = loadLane.then(serve);
  else stageLane = stageLane.then(serve);
});
