/**
 * Where each Hugging Face tensor Bora reads lives in a llama-architecture GGUF file: its GGUF
 * name, for a Mixtral expert which slice of the stacked expert tensor (or the older per-expert
 * tensor), and for q/k projections the heads whose rows llama.cpp's converter permuted to its
 * rope layout. The writer uses the same table in the other direction.
 */
import type { ModelConfig } from '../config';
import { EMBEDDING, FINAL_NORM, LM_HEAD } from '../weights';

export interface GgufLocation {
  /** The GGUF tensor that holds it. */
  readonly ggufName: string;
  /** For an expert: its index along the stacked tensor's outermost axis. */
  readonly expert?: number;
  /** The per-expert tensor name of older files (llama.cpp before stacked experts). */
  readonly legacyName?: string;
  /** For q/k: heads whose rows are in llama.cpp's rope order (0 otherwise). */
  readonly ropeHeads: number;
}

const LAYER_TENSORS: Readonly<Record<string, string>> = Object.freeze({
  'input_layernorm.weight': 'attn_norm.weight',
  'self_attn.q_proj.weight': 'attn_q.weight',
  'self_attn.k_proj.weight': 'attn_k.weight',
  'self_attn.v_proj.weight': 'attn_v.weight',
  'self_attn.o_proj.weight': 'attn_output.weight',
  'post_attention_layernorm.weight': 'ffn_norm.weight',
  'mlp.gate_proj.weight': 'ffn_gate.weight',
  'mlp.up_proj.weight': 'ffn_up.weight',
  'mlp.down_proj.weight': 'ffn_down.weight',
  'block_sparse_moe.gate.weight': 'ffn_gate_inp.weight',
});

/** Mixtral's expert matrices: w1 = gate, w3 = up, w2 = down. */
const EXPERT_TENSORS: Readonly<Record<string, string>> = Object.freeze({ w1: 'ffn_gate', w3: 'ffn_up', w2: 'ffn_down' });

const LAYER_RE = /^model\.layers\.(\d+)\.(.+)$/;
const EXPERT_RE = /^block_sparse_moe\.experts\.(\d+)\.(w[123])\.weight$/;

/** The GGUF location of a Hugging Face tensor name; undefined for a name no GGUF tensor holds. */
export function ggufLocation(hfName: string, c: ModelConfig): GgufLocation | undefined {
  if (hfName === EMBEDDING) return { ggufName: 'token_embd.weight', ropeHeads: 0 };
  if (hfName === FINAL_NORM) return { ggufName: 'output_norm.weight', ropeHeads: 0 };
  if (hfName === LM_HEAD) return c.tieWordEmbeddings ? undefined : { ggufName: 'output.weight', ropeHeads: 0 };
  const layer = LAYER_RE.exec(hfName);
  if (layer === null || Number(layer[1]) >= c.numLayers) return undefined;
  const blk = `blk.${Number(layer[1])}`;
  const rest = layer[2];
  const expert = EXPERT_RE.exec(rest);
  if (expert !== null) {
    const e = Number(expert[1]);
    if (c.numExperts === 0 || e >= c.numExperts) return undefined;
    const base = EXPERT_TENSORS[expert[2]];
    return { ggufName: `${blk}.${base}_exps.weight`, expert: e, legacyName: `${blk}.${base}.${e}.weight`, ropeHeads: 0 };
  }
  const tensor = LAYER_TENSORS[rest];
  if (tensor === undefined) return undefined;
  const isMoeTensor = rest.startsWith('block_sparse_moe.');
  const isMlp = rest.startsWith('mlp.');
  if ((isMoeTensor && c.numExperts === 0) || (isMlp && c.numExperts > 0)) return undefined;
  const ropeHeads = rest === 'self_attn.q_proj.weight' ? c.numHeads : rest === 'self_attn.k_proj.weight' ? c.numKvHeads : 0;
  return { ggufName: `${blk}.${tensor}`, ropeHeads };
}

/**
 * Row `r` of a q/k matrix in Hugging Face order (rotary pairs (i, i + d/2) within a head) is row
 * `ggufRopeRow(r)` in llama.cpp's order (pairs (2i, 2i + 1)): within a head, half s, index i goes
 * to 2i + s. Rows are whole blocks, so moving rows works on quantized bytes as on floats.
 */
export function ggufRopeRow(hfRow: number, headDim: number): number {
  const head = Math.floor(hfRow / headDim);
  const within = hfRow % headDim;
  const half = headDim / 2;
  const s = within < half ? 0 : 1;
  const i = within - s * half;
  return head * headDim + 2 * i + s;
}

/** Reorders the rows of `bytes` so that output row r is input row `from(r)`. */
export function gatherRows(bytes: Uint8Array, rows: number, rowByteLength: number, from: (row: number) => number): Uint8Array {
  const out = new Uint8Array(rows * rowByteLength);
  for (let r = 0; r < rows; r++) {
    const at = from(r) * rowByteLength;
    out.set(bytes.subarray(at, at + rowByteLength), r * rowByteLength);
  }
  return out;
}
