/**
 * A WeightSource that quantizes a checkpoint's 2-D weight tensors in memory (the embedding, every
 * linear layer, the LM head; norms stay as they are), for tests and benchmarks of the quantized
 * paths without a GGUF file. `typeFor` picks each matrix's type (undefined keeps it as stored);
 * with `dequantized` the same quantized values are handed out as float32 instead, which is the
 * reference the quantized kernels must reproduce within float32 rounding. With `kernels` the native
 * row quantizers do the work (bf16 rows go in as they are stored): fast enough for the benchmark
 * model; without, the TypeScript reference quantizers.
 */
import { quantizeRows, type NativeKernels } from '../../common/kernels/native-kernels';
import type { RawTensor } from '../../common/model/checkpoint';
import type { ModelConfig } from '../../common/model/config';
import { fromFloat32, QUANT_BLOCK, toFloat32, type QuantDtype } from '../../common/model/dtype';
import { quantizeTensor } from '../../common/model/quant-formats';
import type { WeightSource } from '../../common/model/weight-source';

export type QuantTypeChooser = (name: string, shape: readonly number[]) => QuantDtype | undefined;

/** One type for every matrix. */
export function everyMatrix(dtype: QuantDtype): QuantTypeChooser {
  return () => dtype;
}

/** llama.cpp's Q4_K_M mix, simplified: v_proj and down_proj in Q6_K, every other matrix Q4_K. */
export const q4kMix: QuantTypeChooser = (name) => (/v_proj|down_proj|w2\b/.test(name) ? 'Q6_K' : 'Q4_K');

export class QuantizedSource implements WeightSource {
  private readonly cache = new Map<string, RawTensor>();

  constructor(
    private readonly inner: WeightSource,
    private readonly typeFor: QuantTypeChooser,
    private readonly options: { readonly dequantized?: boolean; readonly kernels?: NativeKernels; readonly threads?: number } = {},
  ) {}

  get config(): ModelConfig {
    return this.inner.config;
  }

  async readRaw(name: string, expectedShape?: readonly number[]): Promise<RawTensor> {
    const cached = this.cache.get(name);
    if (cached !== undefined) return cached;
    const raw = await this.inner.readRaw(name, expectedShape);
    const dtype = raw.shape.length === 2 ? this.typeFor(name, raw.shape) : undefined;
    let out = raw;
    if (dtype !== undefined) {
      const quantized = this.options.kernels !== undefined ? this.quantizeNative(name, raw, dtype, this.options.kernels) : quantizeTensor(name, toFloat32(raw.bytes, raw.dtype), raw.shape, dtype);
      out = this.options.dequantized ? { dtype: 'F32', shape: raw.shape, bytes: fromFloat32(toFloat32(quantized.bytes, dtype), 'F32') } : quantized;
    }
    this.cache.set(name, out);
    return out;
  }

  private quantizeNative(name: string, raw: RawTensor, dtype: QuantDtype, kernels: NativeKernels): RawTensor {
    // The shape check and its error message are quantizeTensor's (on an empty row set).
    if (raw.shape[1] % QUANT_BLOCK[dtype].elements !== 0) quantizeTensor(name, new Float32Array(0), raw.shape, dtype);
    const aligned = raw.bytes.byteOffset % 2 === 0 ? raw.bytes : raw.bytes.slice();
    const values = raw.dtype === 'BF16' ? new Uint16Array(aligned.buffer, aligned.byteOffset, aligned.byteLength / 2) : toFloat32(raw.bytes, raw.dtype);
    return { dtype, shape: raw.shape, bytes: quantizeRows(kernels, dtype, values, raw.shape[0], this.options.threads ?? 1) };
  }

  async readF32(name: string, expectedShape?: readonly number[]): Promise<Float32Array> {
    const raw = await this.readRaw(name, expectedShape);
    return toFloat32(raw.bytes, raw.dtype);
  }
}
