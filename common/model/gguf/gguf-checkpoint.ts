/**
 * A GGUF file as a WeightSource: tensors under the Hugging Face names Bora uses (weights.ts), in
 * Bora's layouts. q/k rows go back from llama.cpp's rope order to the rotate-half order; a
 * Mixtral expert is its slice of the stacked expert tensor, read on its own; a file without
 * output.weight has a tied head. Opening reads only the header and checks every tensor the model
 * needs (present, a type Bora runs, the shape the metadata implies, inside the file); a tensor
 * is read on demand with positioned reads of its own bytes, never the whole file.
 */
import { open } from 'node:fs/promises';
import { CheckpointError } from '../../errors';
import type { RawTensor } from '../checkpoint';
import type { ModelConfig } from '../config';
import { rowBytes, toFloat32, type TensorDtype } from '../dtype';
import type { WeightSource } from '../weight-source';
import { stageTensorSpecs, type TensorSpec } from '../weights';
import { configFromGguf, configJsonFromGguf } from './gguf-config';
import { GgufMetadata, readGgufHeader, type GgufHeader, type GgufTensorInfo } from './gguf-header';
import { gatherRows, ggufLocation, ggufRopeRow, type GgufLocation } from './gguf-names';
import { dtypeOfGgmlType, ggmlTypeName } from './ggml-types';
import { tokenizerJsonFromGguf } from './gguf-tokenizer';

/** Where one Hugging Face tensor's bytes are in the file. */
interface TensorSlice {
  readonly ggufName: string;
  readonly dtype: TensorDtype;
  readonly shape: readonly number[];
  readonly fileOffsetBytes: number;
  readonly byteLength: number;
  readonly ropeHeads: number;
}

export class GgufCheckpoint implements WeightSource {
  private constructor(
    readonly path: string,
    readonly config: ModelConfig,
    /** The config.json object the metadata implies (served to workers that fetch weights). */
    readonly configJson: Readonly<Record<string, unknown>>,
    private readonly header: GgufHeader,
    private readonly slices: ReadonlyMap<string, TensorSlice>,
  ) {}

  static async open(path: string): Promise<GgufCheckpoint> {
    const header = await readGgufHeader(path);
    const meta = new GgufMetadata(path, header.metadata);
    const tokenCount = header.metadata.has('tokenizer.ggml.tokens') ? meta.strings('tokenizer.ggml.tokens').length : undefined;
    const configJson = configJsonFromGguf(meta, tokenCount, header.tensors.has('output.weight'));
    const config = configFromGguf(configJson, path);
    const slices = new Map<string, TensorSlice>();
    for (const spec of stageTensorSpecs(config, 0, config.numLayers)) {
      slices.set(spec.name, locateTensor(header, config, spec));
    }
    return new GgufCheckpoint(path, config, configJson, header, slices);
  }

  get tensorNames(): string[] {
    return [...this.slices.keys()];
  }

  has(name: string): boolean {
    return this.slices.has(name);
  }

  /** The stored dtype and shape of a tensor under its Hugging Face name. */
  entry(name: string): { readonly dtype: TensorDtype; readonly shape: readonly number[]; readonly byteLength: number } {
    return this.slice(name);
  }

  /** The GGUF metadata, typed (for the tokenizer). */
  get metadata(): GgufMetadata {
    return new GgufMetadata(this.path, this.header.metadata);
  }

  /** The file's vocabulary as Hugging Face tokenizer.json text. */
  tokenizerJson(): string {
    return tokenizerJsonFromGguf(this.metadata);
  }

  async readRaw(name: string, expectedShape?: readonly number[]): Promise<RawTensor> {
    const slice = this.slice(name);
    if (expectedShape !== undefined && !sameShape(slice.shape, expectedShape)) {
      throw new CheckpointError(this.path, `shape [${slice.shape.join(', ')}] (${name}) does not match the expected [${expectedShape.join(', ')}]`, {
        tensor: slice.ggufName,
      });
    }
    const stored = await this.readBytes(slice);
    if (slice.ropeHeads === 0) return { dtype: slice.dtype, shape: slice.shape, bytes: stored };
    const rows = slice.shape[0];
    const rowByteLength = slice.byteLength / rows;
    const headDim = this.config.headDim;
    return { dtype: slice.dtype, shape: slice.shape, bytes: gatherRows(stored, rows, rowByteLength, (r) => ggufRopeRow(r, headDim)) };
  }

  async readF32(name: string, expectedShape?: readonly number[]): Promise<Float32Array> {
    const raw = await this.readRaw(name, expectedShape);
    return toFloat32(raw.bytes, raw.dtype);
  }

  private slice(name: string): TensorSlice {
    const slice = this.slices.get(name);
    if (slice === undefined) throw new CheckpointError(this.path, `holds no tensor for ${name}`, { tensor: name });
    return slice;
  }

  private async readBytes(slice: TensorSlice): Promise<Uint8Array> {
    const handle = await open(this.path, 'r');
    try {
      const buf = new Uint8Array(new ArrayBuffer(slice.byteLength));
      let done = 0;
      while (done < slice.byteLength) {
        const { bytesRead } = await handle.read(buf, done, slice.byteLength - done, slice.fileOffsetBytes + done);
        if (bytesRead === 0) throw new CheckpointError(this.path, `file ended after ${done} of ${slice.byteLength} bytes (truncated)`, { tensor: slice.ggufName });
        done += bytesRead;
      }
      return buf;
    } finally {
      await handle.close();
    }
  }
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** Finds and checks the bytes of one tensor the model needs. */
function locateTensor(header: GgufHeader, config: ModelConfig, spec: TensorSpec): TensorSlice {
  const path = header.path;
  const loc = ggufLocation(spec.name, config);
  if (loc === undefined) throw new CheckpointError(path, `Bora has no GGUF name for ${spec.name}`, { tensor: spec.name });
  const stacked = header.tensors.get(loc.ggufName);
  const legacy = loc.legacyName === undefined ? undefined : header.tensors.get(loc.legacyName);
  const info = stacked ?? legacy;
  if (info === undefined) throw new CheckpointError(path, `missing from the file (Bora's ${spec.name})`, { tensor: loc.ggufName });
  const dtype = dtypeOfGgmlType(info.ggmlType);
  if (dtype === undefined) {
    throw new CheckpointError(path, `stored as ${ggmlTypeName(info.ggmlType)}, a type Bora cannot run (F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K)`, {
      tensor: info.name,
    });
  }
  const isSliceOfStack = stacked !== undefined && loc.expert !== undefined;
  const expected = isSliceOfStack ? [config.numExperts, ...spec.shape] : spec.shape;
  const shape = [...info.ne].reverse();
  if (!sameShape(shape, expected)) {
    throw new CheckpointError(path, `shape [${shape.join(', ')}] disagrees with the metadata, which implies [${expected.join(', ')}]`, { tensor: info.name });
  }
  const rowLength = spec.shape[spec.shape.length - 1];
  const rowByteLength = rowBytes(dtype, rowLength);
  if (rowByteLength === undefined) throw new CheckpointError(path, `rows of ${rowLength} values are not whole ${dtype} blocks`, { tensor: info.name });
  const rows = spec.shape.length === 1 ? 1 : spec.shape[0];
  const byteLength = rows * rowByteLength;
  const totalBytes = (isSliceOfStack ? config.numExperts : 1) * byteLength;
  checkInsideFile(header, info, totalBytes);
  return {
    ggufName: info.name,
    dtype,
    shape: spec.shape,
    fileOffsetBytes: info.fileOffsetBytes + (isSliceOfStack ? (loc as GgufLocation & { expert: number }).expert * byteLength : 0),
    byteLength,
    ropeHeads: loc.ropeHeads,
  };
}

function checkInsideFile(header: GgufHeader, info: GgufTensorInfo, byteLength: number): void {
  const end = info.fileOffsetBytes + byteLength;
  if (end > header.fileBytes) {
    throw new CheckpointError(header.path, `truncated: the tensor's data ends at byte ${end}, the file has ${header.fileBytes}`, { tensor: info.name });
  }
}
