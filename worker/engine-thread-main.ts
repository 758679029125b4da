/**
 * The engine thread's entry point: holds the worker's StageEngines and LocalExperts by handle and
 * serves EngineRequests one at a time, in order. Float32 outputs go back as transfers.
 */
import { parentPort } from 'node:worker_threads';
import { LocalExperts } from '../common/engine/experts';
import { StageEngine } from '../common/engine/stage-engine';
import { InternalError } from '../common/errors';
import { sequenceId } from '../common/ids';
import { Checkpoint } from '../common/model/checkpoint';
import type { WeightSource } from '../common/model/weight-source';
import { toThreadError } from '../common/pool/thread-errors';
import type { EngineReply, EngineReplyValue, EngineRequest, WeightSourceSpec } from './engine-protocol';
import { RemoteWeightSource } from './remote-weights';

const stages = new Map<number, StageEngine>();
const expertSets = new Map<number, LocalExperts>();
let nextHandle = 1;

async function openSource(spec: WeightSourceSpec): Promise<{ source: WeightSource; close(): void }> {
  if (spec.kind === 'local') return { source: await Checkpoint.open(spec.dir), close: () => undefined };
  const remote = await RemoteWeightSource.connect(spec.address, spec.modelId);
  return { source: remote, close: () => remote.close() };
}

function stageOf(handle: number): StageEngine {
  const stage = stages.get(handle);
  if (stage === undefined) throw new InternalError(`engine thread: no stage ${handle}`);
  return stage;
}

function statsOf(stage: StageEngine) {
  return { sequenceCount: stage.sequenceCount, kvCacheBytes: stage.kvCacheBytes };
}

async function handle(request: EngineRequest): Promise<EngineReplyValue> {
  switch (request.op) {
    case 'loadStage': {
      const started = performance.now();
      const { source, close } = await openSource(request.source);
      try {
        const stage = await StageEngine.load(source, request.range, { session: request.session });
        const handleId = nextHandle++;
        stages.set(handleId, stage);
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
        const experts = await LocalExperts.load(source, [...byLayer.keys()], (layer) => byLayer.get(layer) ?? [], request.session);
        const handleId = nextHandle++;
        expertSets.set(handleId, experts);
        return { op: 'loadExperts', experts: handleId, config: source.config, loadSeconds: (performance.now() - started) / 1000 };
      } finally {
        close();
      }
    }
    case 'forward': {
      const stage = stageOf(request.stage);
      const output = await stage.forward(request.input);
      return { op: 'forward', output, stats: statsOf(stage) };
    }
    case 'release': {
      const stage = stageOf(request.stage);
      const released = request.ids.filter((id) => stage.release(sequenceId(id))).length;
      return { op: 'release', released, stats: statsOf(stage) };
    }
    case 'positions': {
      const stage = stageOf(request.stage);
      return { op: 'positions', positions: request.ids.map((id) => stage.nextPosition(sequenceId(id))) };
    }
    case 'runExperts': {
      const experts = expertSets.get(request.experts);
      if (experts === undefined) throw new InternalError(`engine thread: no expert set ${request.experts}`);
      return { op: 'runExperts', outputs: await experts.run(request.layer, request.calls) };
    }
    case 'close': {
      await stages.get(request.handle)?.close();
      await expertSets.get(request.handle)?.close();
      stages.delete(request.handle);
      expertSets.delete(request.handle);
      return { op: 'close' };
    }
  }
}

function transfers(value: EngineReplyValue): ArrayBuffer[] {
  if (value.op === 'forward') return [value.output.hidden, value.output.logits].filter((a) => a !== undefined).map((a) => a!.buffer as ArrayBuffer);
  if (value.op === 'runExperts') return value.outputs.map((o) => o.buffer as ArrayBuffer);
  return [];
}

// Requests are served strictly one after another: the engine is not re-entrant.
let chain: Promise<void> = Promise.resolve();
parentPort!.on('message', (message: { id: number; request: EngineRequest }) => {
  chain = chain.then(async () => {
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
  });
});
