/**
 * Mixtral's router as transformers computes it: softmax over the experts' logits, the top-k
 * experts per token, their weights renormalised to sum to one. Then tokens are grouped per
 * expert so each expert runs once per layer on all of its tokens, and the experts' outputs are
 * summed back per token in expert order.
 */

export interface TokenRoute {
  readonly experts: readonly number[]; // (k,) best first
  readonly weights: readonly number[]; // (k,) summing to 1, as float32
}

/** Routes each of `tokens` rows of logits (tokens, E). */
export function routeTokens(logits: Float32Array, tokens: number, experts: number, topK: number): TokenRoute[] {
  const routes: TokenRoute[] = [];
  for (let n = 0; n < tokens; n++) {
    const row = logits.subarray(n * experts, (n + 1) * experts);
    let max = -Infinity;
    for (const v of row) max = Math.max(max, v);
    const probs = new Float32Array(experts);
    let sum = 0;
    for (let e = 0; e < experts; e++) sum += probs[e] = Math.exp(row[e] - max);
    for (let e = 0; e < experts; e++) probs[e] = probs[e] / sum;
    // Top-k by probability; ties go to the lower expert index.
    const order = Array.from({ length: experts }, (_, e) => e).sort((a, b) => probs[b] - probs[a] || a - b);
    const chosen = order.slice(0, topK);
    const total = Math.fround(chosen.reduce((acc, e) => Math.fround(acc + probs[e]), 0));
    routes.push({ experts: chosen, weights: chosen.map((e) => Math.fround(probs[e] / total)) });
  }
  return routes;
}

/** The tokens one expert processes in one layer. */
export interface ExpertGroup {
  readonly expert: number;
  /** Token rows (indices into the packed token list) routed to this expert, ascending. */
  readonly tokens: readonly number[];
  /** Router weight of this expert for each of those tokens. */
  readonly weights: readonly number[];
}

export function groupByExpert(routes: readonly TokenRoute[], experts: number): ExpertGroup[] {
  const groups = Array.from({ length: experts }, (_, expert) => ({ expert, tokens: [] as number[], weights: [] as number[] }));
  routes.forEach((route, token) => {
    route.experts.forEach((expert, k) => {
      groups[expert].tokens.push(token);
      groups[expert].weights.push(route.weights[k]);
    });
  });
  return groups.filter((g) => g.tokens.length > 0);
}

/** Gathers the rows of `x` (N, H) listed in `tokens` into a new (n, H) array. */
export function gatherRows(x: Float32Array, hidden: number, tokens: readonly number[]): Float32Array {
  const out = new Float32Array(tokens.length * hidden);
  tokens.forEach((token, i) => out.set(x.subarray(token * hidden, (token + 1) * hidden), i * hidden));
  return out;
}

/**
 * out (N, H) += weight * expertOut row by row, for the experts in ascending order, matching the
 * order in which transformers accumulates them.
 */
export function accumulateExperts(out: Float32Array, hidden: number, groups: readonly ExpertGroup[], outputs: readonly Float32Array[]): void {
  const order = groups.map((g, i) => i).sort((a, b) => groups[a].expert - groups[b].expert);
  for (const i of order) {
    const { tokens, weights } = groups[i];
    const y = outputs[i];
    tokens.forEach((token, r) => {
      const w = weights[r];
      const base = token * hidden;
      for (let h = 0; h < hidden; h++) out[base + h] = Math.fround(out[base + h] + Math.fround(y[r * hidden + h] * w));
    });
  }
}
