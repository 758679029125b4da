/**
 * ONNX graphs for the pieces of a Mistral / Mixtral decoder, built from HF weights.
 *
 * Shapes use B = sequences in the batch, T = new tokens per sequence (padded to the longest),
 * P = cached positions per sequence (padded), S = P + T, H = hidden, A = query heads,
 * K = key/value heads, G = A / K, D = head_dim, I = MLP width, E = experts, V = vocab.
 *
 * Every graph computes in float32. Linear layers use Gemm with transB = 1 so that HF's
 * [out, in] weights are used as stored (onnxruntime prepacks them once at load).
 */
import type { ModelConfig } from '../model/config';
import { GraphBuilder, ONNX_FLOAT } from '../onnx/graph-builder';

/** Additive mask value for a position a query must not see; exp() of it is exactly 0 in f32. */
export const MASKED = -1e9;

export interface AttentionWeights {
  readonly inputNorm: Float32Array; // (H,)
  /** q, k and v projections stacked on the output axis. */
  readonly qkv: Float32Array; // ((A + 2K) * D, H)
  readonly o: Float32Array; // (H, A * D)
  readonly postAttentionNorm: Float32Array; // (H,)
}

export interface MlpWeights {
  /** gate and up projections stacked on the output axis. */
  readonly gateUp: Float32Array; // (2I, H)
  readonly down: Float32Array; // (H, I)
}

/** Names of the tensors every decoder-layer graph takes and returns. */
export const LAYER_IO = Object.freeze({
  hidden: 'hidden', // in (B, T, H)
  cos: 'cos', // in (B, T, D)
  sin: 'sin', // in (B, T, D)
  mask: 'mask', // in (B, 1, G*T, S): 0 where visible, MASKED elsewhere; row g*T + t is query t (same for every g)
  pastK: 'past_k', // in (B, K, P, D)
  pastV: 'past_v', // in (B, K, P, D)
  hiddenOut: 'hidden_out', // out (B, T, H)
  newK: 'new_k', // out (B, K, T, D): this step's keys, after rotary embedding
  newV: 'new_v', // out (B, K, T, D)
  normedOut: 'normed_out', // out (B, T, H), attention-only graphs: post-attention RMSNorm of hidden_out
  routerLogits: 'router_logits', // out (B, T, E), attention-only graphs of MoE layers
  qkv: 'qkv', // in (B, T, (A+2K)D), attention-core graph: the q, k, v projections
  context: 'context', // out (B, T, A*D), attention-core graph: attention output before o_proj
});

function rmsNorm(g: GraphBuilder, x: string, weight: string, eps: number): string {
  return g.op('SimplifiedLayerNormalization', [x, weight], { attrs: { axis: -1, epsilon: { float: eps }, stash_type: 1 } });
}

/** x (N, in) @ W^T with W stored (out, in). */
function linear(g: GraphBuilder, x: string, weight: string): string {
  return g.op('Gemm', [x, weight], { attrs: { transB: 1 } });
}

/** (B, T, ...) -> (B * T, width) and back, keeping B and T symbolic. */
function flatten(g: GraphBuilder, x: string, width: number): string {
  return g.op('Reshape', [x, g.constInt64([-1, width])]);
}

function unflatten(g: GraphBuilder, x: string, batchAndTime: string, tail: readonly number[]): string {
  const shape = g.op('Concat', [batchAndTime, g.constInt64(tail)], { attrs: { axis: 0 } });
  return g.op('Reshape', [x, shape]);
}

/** Rotary embedding, HF "rotate half" convention: x * cos + cat(-x2, x1) * sin. */
function rotary(g: GraphBuilder, x: string, cos: string, sin: string, headDim: number): string {
  const half = headDim / 2;
  const [x1, x2] = g.opMulti('Split', [x, g.constInt64([half, half])], 2, { axis: -1 });
  const rotated = g.op('Concat', [g.op('Neg', [x2]), x1], { attrs: { axis: -1 } });
  return g.op('Add', [g.op('Mul', [x, cos]), g.op('Mul', [rotated, sin])]);
}

/** The inputs every layer's attention takes besides its hidden state (declared on `g`). */
function attentionInputs(g: GraphBuilder, c: ModelConfig): { cos: string; sin: string; mask: string; pastK: string; pastV: string } {
  const { numKvHeads: K, headDim: D } = c;
  return {
    cos: g.input(LAYER_IO.cos, ONNX_FLOAT, ['B', 'T', D]),
    sin: g.input(LAYER_IO.sin, ONNX_FLOAT, ['B', 'T', D]),
    mask: g.input(LAYER_IO.mask, ONNX_FLOAT, ['B', 1, 'GT', 'S']),
    pastK: g.input(LAYER_IO.pastK, ONNX_FLOAT, ['B', K, 'P', D]),
    pastV: g.input(LAYER_IO.pastV, ONNX_FLOAT, ['B', K, 'P', D]),
  };
}

/**
 * Attention between the projections: qkv (N, (A+2K)D) -> context (N, A*D) over the cached and
 * new positions. Declares the new_k / new_v outputs on `g`.
 */
function attentionCore(g: GraphBuilder, c: ModelConfig, qkv: string, batchAndTime: string): string {
  const { numHeads: A, numKvHeads: K, headDim: D } = c;
  const { cos, sin, mask, pastK, pastV } = attentionInputs(g, c);
  const [q, k, v] = g.opMulti('Split', [qkv, g.constInt64([A * D, K * D, K * D])], 3, { axis: 1 });

  const cos4 = g.op('Unsqueeze', [cos, g.constInt64([2])]); // (B, T, 1, D)
  const sin4 = g.op('Unsqueeze', [sin, g.constInt64([2])]);
  const qHeads = rotary(g, unflatten(g, q, batchAndTime, [A, D]), cos4, sin4, D); // (B, T, A, D)
  const kHeads = rotary(g, unflatten(g, k, batchAndTime, [K, D]), cos4, sin4, D); // (B, T, K, D)
  const vHeads = unflatten(g, v, batchAndTime, [K, D]); // (B, T, K, D)

  const newK = g.op('Transpose', [kHeads], { attrs: { perm: [0, 2, 1, 3] }, outputName: LAYER_IO.newK }); // (B, K, T, D)
  const newV = g.op('Transpose', [vHeads], { attrs: { perm: [0, 2, 1, 3] }, outputName: LAYER_IO.newV });
  g.output(newK, LAYER_IO.newK, ONNX_FLOAT, ['B', K, 'T', D]);
  g.output(newV, LAYER_IO.newV, ONNX_FLOAT, ['B', K, 'T', D]);
  const keys = g.op('Concat', [pastK, newK], { attrs: { axis: 2 } }); // (B, K, S, D)
  const values = g.op('Concat', [pastV, newV], { attrs: { axis: 2 } }); // (B, K, S, D)

  // Grouped-query attention without repeating K/V: query head h = kvHead * G + g, so the
  // queries of one KV head are contiguous and (B, A, T, D) reshapes to (B, K, G*T, D).
  const qT = g.op('Transpose', [qHeads], { attrs: { perm: [0, 2, 1, 3] } }); // (B, A, T, D)
  const qGrouped = g.op('Reshape', [qT, g.constInt64([0, K, -1, D])]); // (B, K, G*T, D)
  const scores = g.op('Mul', [
    g.op('MatMul', [qGrouped, g.op('Transpose', [keys], { attrs: { perm: [0, 1, 3, 2] } })]), // (B, K, G*T, S)
    g.constF32([1 / Math.sqrt(D)], []),
  ]);
  const probs = g.op('Softmax', [g.op('Add', [scores, mask])], { attrs: { axis: -1 } }); // (B, K, G*T, S)
  const context = g.op('Reshape', [g.op('MatMul', [probs, values]), g.constInt64([0, A, -1, D])]); // (B, A, T, D)
  return flatten(g, g.op('Transpose', [context], { attrs: { perm: [0, 2, 1, 3] } }), A * D); // (N, A*D)
}

/**
 * Pre-norm attention with residual: returns hidden + o_proj(attention(rmsnorm(hidden))).
 * Declares the layer inputs and the new_k / new_v outputs on `g`.
 */
function attentionBlock(g: GraphBuilder, c: ModelConfig, w: AttentionWeights): { residual: string } {
  const { hiddenSize: H, numHeads: A, numKvHeads: K, headDim: D } = c;
  const x = g.input(LAYER_IO.hidden, ONNX_FLOAT, ['B', 'T', H]);
  const batchAndTime = g.op('Slice', [g.op('Shape', [x]), g.constInt64([0]), g.constInt64([2])]); // [B, T]
  const normed = flatten(g, rmsNorm(g, x, g.weightF32('input_norm', [H], w.inputNorm), c.rmsNormEps), H); // (N, H)
  const qkv = linear(g, normed, g.weightF32('qkv', [(A + 2 * K) * D, H], w.qkv)); // (N, (A+2K)D)
  const merged = attentionCore(g, c, qkv, batchAndTime); // (N, A*D)
  const attnOut = unflatten(g, linear(g, merged, g.weightF32('o', [H, A * D], w.o)), batchAndTime, [H]); // (B, T, H)
  return { residual: g.op('Add', [x, attnOut]) };
}

/**
 * Attention alone, for engines that run the projections themselves (the native kernels):
 * qkv (B, T, (A+2K)D) -> context (B, T, A*D), plus new_k / new_v. It holds no weights, so one
 * session serves every layer of a stage.
 */
export function attentionCoreGraph(c: ModelConfig): Uint8Array {
  const { numHeads: A, numKvHeads: K, headDim: D } = c;
  const g = new GraphBuilder('attention_core');
  const qkv = g.input(LAYER_IO.qkv, ONNX_FLOAT, ['B', 'T', (A + 2 * K) * D]);
  const batchAndTime = g.op('Slice', [g.op('Shape', [qkv]), g.constInt64([0]), g.constInt64([2])]); // [B, T]
  const context = attentionCore(g, c, flatten(g, qkv, (A + 2 * K) * D), batchAndTime);
  g.output(unflatten(g, context, batchAndTime, [A * D]), LAYER_IO.context, ONNX_FLOAT, ['B', 'T', A * D]);
  return g.toModel();
}

/** SwiGLU: down(silu(gate(x)) * up(x)) for x (N, H). */
function swiGlu(g: GraphBuilder, x: string, c: ModelConfig, w: MlpWeights, prefix: string): string {
  const { hiddenSize: H, intermediateSize: I } = c;
  const gateUp = linear(g, x, g.weightF32(`${prefix}gate_up`, [2 * I, H], w.gateUp)); // (N, 2I)
  const [gate, up] = g.opMulti('Split', [gateUp, g.constInt64([I, I])], 2, { axis: 1 });
  const activated = g.op('Mul', [g.op('Mul', [gate, g.op('Sigmoid', [gate])]), up]); // (N, I)
  return linear(g, activated, g.weightF32(`${prefix}down`, [H, I], w.down)); // (N, H)
}

/** A whole dense (Mistral) decoder layer. */
export function denseLayerGraph(c: ModelConfig, attn: AttentionWeights, mlp: MlpWeights): Uint8Array {
  const g = new GraphBuilder('dense_layer');
  const { residual } = attentionBlock(g, c, attn);
  const H = c.hiddenSize;
  const normed = flatten(g, rmsNorm(g, residual, g.weightF32('post_norm', [H], attn.postAttentionNorm), c.rmsNormEps), H);
  const mlpOut = g.op('Reshape', [swiGlu(g, normed, c, mlp, 'mlp_'), g.op('Shape', [residual])]); // (B, T, H)
  g.output(g.op('Add', [residual, mlpOut]), LAYER_IO.hiddenOut, ONNX_FLOAT, ['B', 'T', H]);
  return g.toModel();
}

/**
 * The attention half of a Mixtral layer plus its router: hidden_out is the residual stream after
 * attention; the experts' weighted sum is added to it outside this graph.
 */
export function moeAttentionGraph(c: ModelConfig, attn: AttentionWeights, router: Float32Array /* (E, H) */): Uint8Array {
  const g = new GraphBuilder('moe_attention');
  const { residual } = attentionBlock(g, c, attn);
  const H = c.hiddenSize;
  const normed = rmsNorm(g, residual, g.weightF32('post_norm', [H], attn.postAttentionNorm), c.rmsNormEps); // (B, T, H)
  const logits = linear(g, flatten(g, normed, H), g.weightF32('router', [c.numExperts, H], router)); // (N, E)
  g.output(residual, LAYER_IO.hiddenOut, ONNX_FLOAT, ['B', 'T', H]);
  g.output(normed, LAYER_IO.normedOut, ONNX_FLOAT, ['B', 'T', H]);
  g.output(logits, LAYER_IO.routerLogits, ONNX_FLOAT, ['N', c.numExperts]);
  return g.toModel();
}

export const EXPERT_IO = Object.freeze({ input: 'x', output: 'y' }); // (N, H) -> (N, H)

/** One Mixtral expert over the tokens routed to it. */
export function expertGraph(c: ModelConfig, w: MlpWeights): Uint8Array {
  const g = new GraphBuilder('expert');
  const x = g.input(EXPERT_IO.input, ONNX_FLOAT, ['N', c.hiddenSize]);
  g.output(swiGlu(g, x, c, w, ''), EXPERT_IO.output, ONNX_FLOAT, ['N', c.hiddenSize]);
  return g.toModel();
}

export const HEAD_IO = Object.freeze({ input: 'x', output: 'logits' }); // (B, H) -> (B, V)

/** Final RMSNorm and LM head over one hidden state per sequence. */
export function headGraph(c: ModelConfig, finalNorm: Float32Array, lmHead: Float32Array /* (V, H) */): Uint8Array {
  const g = new GraphBuilder('head');
  const x = g.input(HEAD_IO.input, ONNX_FLOAT, ['B', c.hiddenSize]);
  const normed = rmsNorm(g, x, g.weightF32('final_norm', [c.hiddenSize], finalNorm), c.rmsNormEps);
  g.output(linear(g, normed, g.weightF32('lm_head', [c.vocabSize, c.hiddenSize], lmHead)), HEAD_IO.output, ONNX_FLOAT, ['B', c.vocabSize]);
  return g.toModel();
}
