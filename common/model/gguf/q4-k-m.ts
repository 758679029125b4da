/**
 * Which type each matrix gets in a Q4_K_M file, following the rule of llama.cpp's
 * llama-quantize (read there, written here): Q4_K for most matrices; Q6_K for the output matrix
 * (the embedding when the head is tied) and for attn_v and ffn_down on the first and last eighth
 * of the layers and every third layer between; in an 8-expert model attn_v gets Q8_0. A tensor
 * whose rows are not whole 256-value blocks falls back to a 32-value block type.
 *
 * Two deviations, both towards more bits, because Bora runs Q8_0, Q4_0, Q4_K and Q6_K only:
 * llama.cpp gives an 8-expert model's attn_output Q5_K (here Q6_K), and falls back from Q4_K to
 * Q5_0 (here Q8_0; Q6_K falls back to Q8_0 in both).
 */
import type { QuantDtype } from '../dtype';

const K_BLOCK_ELEMENTS = 256;

/** llama.cpp's use_more_bits: the first and last eighth of the layers, and every third between. */
export function useMoreBits(layer: number, numLayers: number): boolean {
  const eighth = Math.floor(numLayers / 8);
  return layer < eighth || layer >= Math.floor((7 * numLayers) / 8) || (layer - eighth) % 3 === 2;
}

export interface MatrixRole {
  /** The GGUF tensor name, e.g. blk.3.attn_v.weight. */
  readonly ggufName: string;
  /** Values per row (the inner dimension). */
  readonly cols: number;
  readonly numLayers: number;
  readonly numExperts: number;
  /** Whether the file has no output.weight (token_embd is then also the head). */
  readonly tiedHead: boolean;
}

export function q4KMType(m: MatrixRole): QuantDtype {
  const layer = /^blk\.(\d+)\./.exec(m.ggufName);
  const i = layer === null ? -1 : Number(layer[1]);
  let type: QuantDtype = 'Q4_K';
  if (m.ggufName === 'output.weight' || (m.tiedHead && m.ggufName === 'token_embd.weight')) type = 'Q6_K';
  else if (m.ggufName.endsWith('.attn_v.weight')) type = m.numExperts === 8 ? 'Q8_0' : useMoreBits(i, m.numLayers) ? 'Q6_K' : 'Q4_K';
  else if (/\.ffn_down(_exps)?\.weight$/.test(m.ggufName)) type = useMoreBits(i, m.numLayers) ? 'Q6_K' : 'Q4_K';
  else if (m.ggufName.endsWith('.attn_output.weight') && m.numExperts === 8) type = 'Q6_K';
  if ((type === 'Q4_K' || type === 'Q6_K') && m.cols % K_BLOCK_ELEMENTS !== 0) return 'Q8_0';
  return type;
}
