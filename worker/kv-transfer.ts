/**
 * Moving KV caches between workers at a planned hand-over (Plan.handover): the FetchKv service
 * that serves the caches of the stages a worker served in an epoch, and the client that fetches
 * and reassembles them. A cache travels as one KvSlice per (sequence, layer, run of slots), each
 * well below gRPC's message limit.
 */
import * as grpc from '@grpc/grpc-js';
import type { CacheSnapshot } from '../common/engine/kv-cache';
import { FailedPreconditionError, UnavailableError } from '../common/errors';
import { sequenceId, type LayerRange, type SequenceId } from '../common/ids';
import { fromServiceError, failCall } from '../common/wire/grpc-status';
import type { NodeSecurity } from '../common/security/node-security';
import type { KvSlice } from '../common/wire/messages';
import { withWorkerClient, type WorkerHandlers } from '../common/wire/proto';
import type { SequenceSnapshot } from './engine-protocol';
import { writeWithBackpressure } from '../common/wire/stream-write';

/** Bytes of keys + values in one KvSlice. */
const MAX_SLICE_BYTES = 1024 * 1024;

/** A stage whose caches can be copied out. */
export interface KvStage {
  readonly range: LayerRange;
  readonly config: { readonly numKvHeads: number; readonly headDim: number };
  snapshotKv(ids: readonly SequenceId[], layers: LayerRange): Promise<SequenceSnapshot[]>;
}

/** The stages this worker served per epoch, kept while other workers may still fetch from them. */
export class KvSources {
  private readonly byEpoch = new Map<number, readonly KvStage[]>();

  set(epoch: number, stages: readonly KvStage[]): void {
    this.byEpoch.set(epoch, stages);
    // Only the latest two epochs can be the source of a hand-over.
    for (const e of [...this.byEpoch.keys()]) if (e < epoch - 1) this.byEpoch.delete(e);
  }

  /** Whether `stage` is one this worker served in `epoch`. */
  served(epoch: number, stage: object): boolean {
    return this.byEpoch.get(epoch)?.includes(stage as KvStage) ?? false;
  }

  /** The stage served in `epoch` that holds `layers`. */
  find(epoch: number, layers: LayerRange): KvStage {
    const stage = this.byEpoch.get(epoch)?.find((s) => s.range.start <= layers.start && layers.end <= s.range.end);
    if (stage === undefined) throw new FailedPreconditionError(`no stage of epoch ${epoch} holding layers [${layers.start}, ${layers.end}) is kept here`);
    return stage;
  }

  async snapshot(epoch: number, layers: LayerRange, ids: readonly SequenceId[]): Promise<SequenceSnapshot[]> {
    return this.find(epoch, layers).snapshotKv(ids, layers);
  }
}

/** Server side of FetchKv. */
export function fetchKvHandler(sources: KvSources): WorkerHandlers['FetchKv'] {
  return (call) => {
    const r = call.request;
    const layers = { start: r.layerStart, end: r.layerEnd };
    (async () => {
      const stage = sources.find(r.planEpoch, layers);
      const entries = await stage.snapshotKv(r.sequenceIds.map(sequenceId), layers);
      for (const e of entries) {
        for (const slice of toSlices(e, stage.config.numKvHeads, stage.config.headDim)) {
          if (!(await writeWithBackpressure(call, slice))) return;
        }
      }
      call.end();
    })().catch((err: unknown) => failCall(call, err));
  };
}

/** One sequence's snapshot as KvSlices of at most `maxBytes` of keys + values each (at least one slot). */
export function toSlices(e: SequenceSnapshot, K: number, D: number, maxBytes = MAX_SLICE_BYTES): KvSlice[] {
  const total = e.snapshot.positions.length;
  const perSlot = 2 * K * D * 4;
  const step = Math.max(1, Math.floor(maxBytes / perSlot));
  const slices: KvSlice[] = [];
  e.snapshot.layers.forEach(({ k, v }, i) => {
    for (let start = 0; start === 0 || start < total; start += step) {
      const n = Math.min(step, total - start);
      const keys = new Float32Array(K * n * D);
      const values = new Float32Array(K * n * D);
      for (let h = 0; h < K; h++) {
        keys.set(k.subarray((h * total + start) * D, (h * total + start + n) * D), h * n * D);
        values.set(v.subarray((h * total + start) * D, (h * total + start + n) * D), h * n * D);
      }
      slices.push({
        sequenceId: e.id,
        layer: e.layerStart + i,
        nextPosition: e.snapshot.nextPosition,
        totalSlots: total,
        slotStart: start,
        positions: [...e.snapshot.positions.subarray(start, start + n)],
        keys: Buffer.from(keys.buffer),
        values: Buffer.from(values.buffer),
      });
      if (total === 0) break;
    }
  });
  return slices;
}

/** Fetches the caches of `ids` for `layers` from the worker at `address`, as it served `epoch`. */
export function fetchKv(
  address: string,
  epoch: number,
  layers: LayerRange,
  ids: readonly SequenceId[],
  shape: { kvHeads: number; headDim: number },
  deadlineMs: number,
  security: NodeSecurity,
): Promise<SequenceSnapshot[]> {
  const assembler = new SnapshotAssembler(layers, shape.kvHeads, shape.headDim);
  return withWorkerClient<SequenceSnapshot[]>(
    address,
    security,
    (client) =>
      new Promise((resolve, reject) => {
        const call = client.fetchKv({ planEpoch: epoch, layerStart: layers.start, layerEnd: layers.end, sequenceIds: [...ids] }, { deadline: Date.now() + deadlineMs });
        call.on('data', (slice: KvSlice) => {
          try {
            assembler.add(slice);
          } catch (err) {
            call.cancel();
            reject(err);
          }
        });
        call.on('error', (err: grpc.ServiceError) => reject(fromServiceError(err)));
        call.on('end', () => {
          try {
            resolve(assembler.finish());
          } catch (err) {
            reject(err);
          }
        });
      }),
  );
}

interface Partial {
  nextPosition: number;
  positions: Int32Array;
  filled: number;
  layers: Map<number, { k: Float32Array; v: Float32Array; filled: number }>;
}

/** Puts KvSlices back together into one snapshot per sequence; rejects anything inconsistent. */
export class SnapshotAssembler {
  private readonly parts = new Map<string, Partial>();

  constructor(
    private readonly layers: LayerRange,
    private readonly kvHeads: number,
    private readonly headDim: number,
  ) {}

  add(s: KvSlice): void {
    const K = this.kvHeads;
    const D = this.headDim;
    const n = s.positions.length;
    const bad = (why: string): never => {
      throw new UnavailableError(`a KV slice of sequence ${s.sequenceId}, layer ${s.layer} is malformed: ${why}`);
    };
    if (s.layer < this.layers.start || s.layer >= this.layers.end) bad(`layer outside [${this.layers.start}, ${this.layers.end})`);
    if (s.slotStart + n > s.totalSlots) bad(`slots ${s.slotStart}+${n} exceed ${s.totalSlots}`);
    if (s.keys.length !== K * n * D * 4 || s.values.length !== K * n * D * 4) bad(`${s.keys.length}/${s.values.length} bytes for ${n} slots`);
    let part = this.parts.get(s.sequenceId);
    if (part === undefined) {
      part = { nextPosition: s.nextPosition, positions: new Int32Array(s.totalSlots), filled: 0, layers: new Map() };
      this.parts.set(s.sequenceId, part);
    }
    if (part.nextPosition !== s.nextPosition || part.positions.length !== s.totalSlots) bad('its layers disagree on the cached positions');
    let layer = part.layers.get(s.layer);
    if (layer === undefined) {
      layer = { k: new Float32Array(K * s.totalSlots * D), v: new Float32Array(K * s.totalSlots * D), filled: 0 };
      part.layers.set(s.layer, layer);
    }
    const keys = new Float32Array(new Uint8Array(s.keys).buffer);
    const values = new Float32Array(new Uint8Array(s.values).buffer);
    for (let h = 0; h < K; h++) {
      layer.k.set(keys.subarray(h * n * D, (h + 1) * n * D), (h * s.totalSlots + s.slotStart) * D);
      layer.v.set(values.subarray(h * n * D, (h + 1) * n * D), (h * s.totalSlots + s.slotStart) * D);
    }
    layer.filled += n;
    part.positions.set(s.positions, s.slotStart);
  }

  finish(): SequenceSnapshot[] {
    const count = this.layers.end - this.layers.start;
    return [...this.parts].map(([id, part]) => {
      const layers: CacheSnapshot['layers'][number][] = [];
      for (let l = this.layers.start; l < this.layers.end; l++) {
        const layer = part.layers.get(l);
        if (layer === undefined || layer.filled !== part.positions.length) {
          throw new UnavailableError(`the KV cache of sequence ${id} arrived without all of layer ${l} (${count} layers expected)`);
        }
        layers.push({ k: layer.k, v: layer.v });
      }
      return { id, layerStart: this.layers.start, snapshot: { nextPosition: part.nextPosition, positions: part.positions, layers } };
    });
  }
}
