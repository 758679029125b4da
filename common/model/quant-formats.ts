/**
 * ggml's block-quantized formats (llama.cpp's Q8_0, Q4_0, Q4_K, Q6_K) in TypeScript: the
 * reference dequantization, bit for bit what the block layouts define, and reference quantizers.
 * The native kernels (common/kernels/quant*.c) read the same bytes; these functions define what
 * they must compute and are what toFloat32 uses for quantized tensors.
 *
 * Block layouts (little-endian, `half` = IEEE binary16, widened to float32 exactly):
 *   Q8_0  34 bytes / 32 values:  half d; int8 q[32]                 value i = d * q[i]
 *   Q4_0  18 bytes / 32 values:  half d; uint8 qs[16]               value j = d * ((qs[j] & 15) - 8),
 *                                                                   value j + 16 = d * ((qs[j] >> 4) - 8)
 *   Q4_K 144 bytes / 256 values: half d; half dmin; uint8 scales[12]; uint8 qs[128]
 *        eight sub-blocks of 32, each with a 6-bit scale sc and 6-bit min m packed in `scales`
 *        (sub-blocks 0-3: low 6 bits of bytes j and j + 4; 4-7: a nibble of byte j + 4 and the
 *        top two bits of bytes j - 4 and j); values in groups of 64: the low nibbles of 32 qs
 *        bytes are sub-block 2g, the high nibbles sub-block 2g + 1;
 *        value = (d * sc) * q - (dmin * m)
 *   Q6_K 210 bytes / 256 values: uint8 ql[128]; uint8 qh[64]; int8 scales[16]; half d
 *        6-bit q = 4 low bits from ql | 2 high bits from qh, minus 32; sixteen sub-blocks of 16
 *        with an int8 scale each; value = (d * scale) * q
 * Every product above is exact in float32 (at most 23 significant bits), so the only rounding is
 * Q4_K's subtraction: the values do not depend on the order of the operations.
 */
import { InvalidArgumentError } from '../errors';
import type { RawTensor } from './checkpoint';
import { f16ToF32, f32ToF16Bits, QUANT_BLOCK, type QuantDtype } from './dtype';

const fround = Math.fround;

/** The float32 value of half bits. */
function half(bits: number): number {
  return f16ToF32(Uint16Array.of(bits))[0];
}

/** The half value nearest to x (round to nearest even), as float32. */
function toHalf(x: number): { bits: number; value: number } {
  const bits = f32ToF16Bits(x);
  return { bits, value: half(bits) };
}

/** Q4_K's packed 6-bit scale and min of sub-block j (0..7). */
export function q4kScaleMin(scales: Uint8Array, offset: number, j: number): { scale: number; min: number } {
  const s = (i: number): number => scales[offset + i];
  if (j < 4) return { scale: s(j) & 63, min: s(j + 4) & 63 };
  return { scale: (s(j + 4) & 0xf) | ((s(j - 4) >> 6) << 4), min: (s(j + 4) >> 4) | ((s(j) >> 6) << 4) };
}

/** Values of `count` elements stored as `dtype` in `bytes`; count must be whole blocks. */
export function dequantize(bytes: Uint8Array, dtype: QuantDtype, count: number, out: Float32Array = new Float32Array(count)): Float32Array {
  const block = QUANT_BLOCK[dtype];
  if (count % block.elements !== 0) throw new InvalidArgumentError(`${dtype}: ${count} values are not whole blocks of ${block.elements}`);
  const blocks = count / block.elements;
  if (bytes.byteLength < blocks * block.bytes) throw new InvalidArgumentError(`${dtype}: ${bytes.byteLength} bytes hold fewer than ${blocks} blocks`);
  const h = (at: number): number => half(bytes[at] | (bytes[at + 1] << 8));
  const i8 = (at: number): number => (bytes[at] << 24) >> 24;
  for (let b = 0; b < blocks; b++) {
    const at = b * block.bytes;
    const y = b * block.elements;
    switch (dtype) {
      case 'Q8_0': {
        const d = h(at);
        for (let i = 0; i < 32; i++) out[y + i] = fround(d * i8(at + 2 + i));
        break;
      }
      case 'Q4_0': {
        const d = h(at);
        for (let j = 0; j < 16; j++) {
          out[y + j] = fround(d * ((bytes[at + 2 + j] & 15) - 8));
          out[y + j + 16] = fround(d * ((bytes[at + 2 + j] >> 4) - 8));
        }
        break;
      }
      case 'Q4_K': {
        const d = h(at);
        const dmin = h(at + 2);
        for (let g = 0; g < 4; g++) {
          const lo = q4kScaleMin(bytes, at + 4, 2 * g);
          const hi = q4kScaleMin(bytes, at + 4, 2 * g + 1);
          const [d1, m1, d2, m2] = [fround(d * lo.scale), fround(dmin * lo.min), fround(d * hi.scale), fround(dmin * hi.min)];
          for (let l = 0; l < 32; l++) {
            const q = bytes[at + 16 + 32 * g + l];
            out[y + 64 * g + l] = fround(fround(d1 * (q & 15)) - m1);
            out[y + 64 * g + 32 + l] = fround(fround(d2 * (q >> 4)) - m2);
          }
        }
        break;
      }
      case 'Q6_K': {
        const d = h(at + 208);
        for (let n = 0; n < 2; n++) {
          const ql = at + 64 * n;
          const qh = at + 128 + 32 * n;
          const sc = at + 192 + 8 * n;
          for (let l = 0; l < 32; l++) {
            const is = l >> 4;
            const hb = bytes[qh + l];
            const q1 = ((bytes[ql + l] & 15) | ((hb & 3) << 4)) - 32;
            const q2 = ((bytes[ql + l + 32] & 15) | (((hb >> 2) & 3) << 4)) - 32;
            const q3 = ((bytes[ql + l] >> 4) | (((hb >> 4) & 3) << 4)) - 32;
            const q4 = ((bytes[ql + l + 32] >> 4) | (((hb >> 6) & 3) << 4)) - 32;
            out[y + 128 * n + l] = fround(fround(d * i8(sc + is)) * q1);
            out[y + 128 * n + l + 32] = fround(fround(d * i8(sc + is + 2)) * q2);
            out[y + 128 * n + l + 64] = fround(fround(d * i8(sc + is + 4)) * q3);
            out[y + 128 * n + l + 96] = fround(fround(d * i8(sc + is + 6)) * q4);
          }
        }
        break;
      }
    }
  }
  return out;
}

/** C's roundf: to nearest, halves away from zero. */
function roundAway(x: number): number {
  return x < 0 ? -Math.round(-x) : Math.round(x);
}

/** Q8_0 as llama.cpp's reference quantizer: d = max|x| / 127, q = round(x / d). */
function quantizeQ8_0(x: Float32Array, at: number, out: Uint8Array, o: number): void {
  let amax = 0;
  for (let i = 0; i < 32; i++) amax = Math.max(amax, Math.abs(x[at + i]));
  const d = fround(amax / 127);
  const id = d !== 0 ? fround(1 / d) : 0;
  const { bits } = toHalf(d);
  out[o] = bits & 255;
  out[o + 1] = bits >> 8;
  for (let i = 0; i < 32; i++) out[o + 2 + i] = roundAway(fround(x[at + i] * id)) & 255;
}

/** Q4_0 as llama.cpp's reference quantizer: d = -(the value of largest magnitude) / 8. */
function quantizeQ4_0(x: Float32Array, at: number, out: Uint8Array, o: number): void {
  let amax = 0;
  let max = 0;
  for (let i = 0; i < 32; i++) {
    const v = x[at + i];
    if (Math.abs(v) > amax) {
      amax = Math.abs(v);
      max = v;
    }
  }
  const d = fround(max / -8);
  const id = d !== 0 ? fround(1 / d) : 0;
  const { bits } = toHalf(d);
  out[o] = bits & 255;
  out[o + 1] = bits >> 8;
  const q = (v: number): number => Math.min(15, Math.trunc(fround(fround(v * id) + 8.5)));
  for (let j = 0; j < 16; j++) out[o + 2 + j] = q(x[at + j]) | (q(x[at + j + 16]) << 4);
}

/**
 * The scale and min of one sub-block for value = scale * q - min, q in [0, nmax]: tries a grid of
 * scales around (max - min) / nmax, refits scale and min by least squares for each rounding, and
 * keeps the one with the smallest squared error over that rounding (computed from the sums). min is kept >= 0 (the block's minimum clamped
 * to <= 0), as Q4_K stores it.
 */
export function fitScaleMin(x: Float32Array, at: number, n: number, nmax: number): { scale: number; min: number } {
  let lo = x[at];
  let hi = x[at];
  for (let i = 1; i < n; i++) {
    lo = Math.min(lo, x[at + i]);
    hi = Math.max(hi, x[at + i]);
  }
  lo = Math.min(lo, 0);
  if (hi <= lo) return { scale: 0, min: -lo };
  let best = { scale: (hi - lo) / nmax, min: -lo, err: Infinity };
  let sx = 0;
  let sxx = 0;
  for (let i = 0; i < n; i++) {
    sx += x[at + i];
    sxx += x[at + i] * x[at + i];
  }
  for (let step = -4; step <= 4; step++) {
    const iscale = (nmax + 0.1 * step) / (hi - lo);
    // Least squares of x ~ s q + b over the rounded q (b = -min, clamped to <= 0).
    let sq = 0;
    let sqq = 0;
    let sqx = 0;
    for (let i = 0; i < n; i++) {
      const q = Math.min(nmax, Math.round(iscale * (x[at + i] - lo)));
      sq += q;
      sqq += q * q;
      sqx += q * x[at + i];
    }
    const det = n * sqq - sq * sq;
    if (det <= 0) continue;
    let s = (n * sqx - sq * sx) / det;
    let b = (sqq * sx - sq * sqx) / det;
    if (b > 0) {
      b = 0;
      s = sqq > 0 ? sqx / sqq : 0;
    }
    if (s <= 0) continue;
    // The squared error over these q, from the sums.
    const err = s * s * sqq + 2 * s * b * sq - 2 * s * sqx + n * b * b - 2 * b * sx + sxx;
    if (err < best.err) best = { scale: s, min: -b, err };
  }
  return { scale: best.scale, min: best.min };
}

/** Q4_K: a fitted scale and min per sub-block of 32, both quantized to 6 bits against d and dmin. */
function quantizeQ4_K(x: Float32Array, at: number, out: Uint8Array, o: number): void {
  const fits = Array.from({ length: 8 }, (_, j) => fitScaleMin(x, at + 32 * j, 32, 15));
  const maxScale = Math.max(...fits.map((f) => f.scale));
  const maxMin = Math.max(...fits.map((f) => f.min));
  const d = toHalf(maxScale / 63);
  const dmin = toHalf(maxMin / 63);
  const ls = fits.map((f) => (d.value > 0 ? Math.min(63, Math.round(f.scale / d.value)) : 0));
  const lm = fits.map((f) => (dmin.value > 0 ? Math.min(63, Math.round(f.min / dmin.value)) : 0));
  out[o] = d.bits & 255;
  out[o + 1] = d.bits >> 8;
  out[o + 2] = dmin.bits & 255;
  out[o + 3] = dmin.bits >> 8;
  for (let j = 0; j < 4; j++) {
    out[o + 4 + j] = (ls[j] & 63) | ((ls[j + 4] >> 4) << 6);
    out[o + 8 + j] = (lm[j] & 63) | ((lm[j + 4] >> 4) << 6);
    out[o + 12 + j] = (ls[j + 4] & 15) | ((lm[j + 4] & 15) << 4);
  }
  for (let g = 0; g < 4; g++) {
    const q = (j: number, l: number): number => {
      const scale = fround(d.value * ls[j]);
      if (scale === 0) return 0;
      const min = fround(dmin.value * lm[j]);
      return Math.max(0, Math.min(15, Math.round((x[at + 32 * j + l] + min) / scale)));
    };
    for (let l = 0; l < 32; l++) out[o + 16 + 32 * g + l] = q(2 * g, l) | (q(2 * g + 1, l) << 4);
  }
}

/** Q6_K: a signed scale per sub-block of 16 (q in [-32, 31]), the scales quantized to int8 against d. */
function quantizeQ6_K(x: Float32Array, at: number, out: Uint8Array, o: number): void {
  const scales = new Float64Array(16);
  for (let j = 0; j < 16; j++) {
    let amax = 0;
    let max = 0;
    for (let i = 0; i < 16; i++) {
      const v = x[at + 16 * j + i];
      if (Math.abs(v) > amax) {
        amax = Math.abs(v);
        max = v;
      }
    }
    scales[j] = max / -32;
  }
  let maxScale = 0;
  for (const s of scales) if (Math.abs(s) > Math.abs(maxScale)) maxScale = s;
  const d = toHalf(maxScale / -128);
  out.fill(0, o, o + 210);
  out[o + 208] = d.bits & 255;
  out[o + 209] = d.bits >> 8;
  const ls = Array.from(scales, (s) => (d.value !== 0 ? Math.max(-128, Math.min(127, roundAway(s / d.value))) : 0));
  for (let j = 0; j < 16; j++) out[o + 192 + j] = ls[j] & 255;
  for (let e = 0; e < 256; e++) {
    const step = fround(d.value * ls[e >> 4]);
    const q = step === 0 ? 0 : Math.max(-32, Math.min(31, roundAway(x[at + e] / step)));
    const u = q + 32;
    // Position of element e: half n, quarter qq (which nibble of which ql byte, which qh bits), lane l.
    const n = e >> 7;
    const qq = (e & 127) >> 5;
    const l = e & 31;
    const ql = o + 64 * n + l + (qq & 1) * 32;
    out[ql] |= (u & 15) << ((qq >> 1) * 4);
    out[o + 128 + 32 * n + l] |= (u >> 4) << (2 * qq);
  }
}

const QUANTIZERS: Readonly<Record<QuantDtype, (x: Float32Array, at: number, out: Uint8Array, o: number) => void>> = {
  Q8_0: quantizeQ8_0,
  Q4_0: quantizeQ4_0,
  Q4_K: quantizeQ4_K,
  Q6_K: quantizeQ6_K,
};

/** Quantizes values (whole blocks) to `dtype`'s block bytes. */
export function quantize(values: Float32Array, dtype: QuantDtype): Uint8Array {
  const block = QUANT_BLOCK[dtype];
  if (values.length % block.elements !== 0) throw new InvalidArgumentError(`${dtype}: ${values.length} values are not whole blocks of ${block.elements}`);
  const blocks = values.length / block.elements;
  const out = new Uint8Array(blocks * block.bytes);
  for (let b = 0; b < blocks; b++) QUANTIZERS[dtype](values, b * block.elements, out, b * block.bytes);
  return out;
}

/**
 * A named matrix (rows, cols) of float32 values quantized to `dtype`. A row that is not whole
 * blocks of the type is an error naming the tensor and the type (a writer then falls back to
 * another type for that tensor).
 */
export function quantizeTensor(name: string, values: Float32Array, shape: readonly number[], dtype: QuantDtype): RawTensor {
  const cols = shape.at(-1) ?? 0;
  const block = QUANT_BLOCK[dtype].elements;
  if (shape.length < 1 || cols === 0 || cols % block !== 0) {
    throw new InvalidArgumentError(`tensor ${name} [${shape}] cannot be stored as ${dtype}: its rows have ${cols} values, not a multiple of ${block}`);
  }
  return { dtype, shape, bytes: quantize(values, dtype) };
}
