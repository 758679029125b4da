/**
 * Histogram bucket bounds, chosen per quantity from what this system measures (see
 * RUNTIME-FACTS.md): each set is dense where the values usually fall, so quantiles estimated from
 * the buckets stay within ~1.5x there, and reaches far enough that the +Inf bucket only counts
 * real outliers. Upper bounds are inclusive (Prometheus `le`).
 */

/**
 * Time to first token: queueing + prefill through every stage. A short prompt on a small model
 * takes tens of ms, a long prompt on a CPU 7B pipeline seconds; a request that waits out a
 * recovery can take a minute.
 */
export const TIME_TO_FIRST_TOKEN_BUCKETS_SECONDS: readonly number[] = Object.freeze([
  0.01, 0.025, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1, 1.5, 2.5, 5, 10, 30, 60,
]);

/**
 * One Embed call, from the call to its last vector: prefill only, so like a time to first token
 * of the same length; a batch of long inputs takes seconds.
 */
export const EMBEDDING_BUCKETS_SECONDS: readonly number[] = TIME_TO_FIRST_TOKEN_BUCKETS_SECONDS;

/**
 * Between two tokens of one sequence: one decode step. On 2 CPU cores batch-1 decode runs at
 * 5-60 tokens/s (17-200 ms per token), so that range is dense; a reshard stalls a sequence for
 * seconds (the lease TTL plus a reload).
 */
export const INTER_TOKEN_BUCKETS_SECONDS: readonly number[] = Object.freeze([
  0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1, 2.5, 5, 10,
]);

/**
 * Failure detected -> sequences generating again: bounded below by lease expiry (~2-3.5 s with
 * TTL 2-3) and above by reloading weights on the survivors.
 */
export const RECOVERY_BUCKETS_SECONDS: readonly number[] = Object.freeze([
  0.1, 0.25, 0.5, 1, 2, 3, 4, 5, 7.5, 10, 15, 30, 60, 120, 300,
]);

/**
 * One expert-parallel round trip (send hidden states, run the expert MLP, receive): a loopback
 * gRPC hop is ~0.1-0.3 ms, a 4-bit expert MLP a few ms, a large batch tens of ms.
 */
export const EXPERT_DISPATCH_BUCKETS_SECONDS: readonly number[] = Object.freeze([
  0.00025, 0.0005, 0.001, 0.002, 0.004, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
]);

/**
 * One stage's forward pass over a batch: a decode step over a few layers is ms, a long prefill
 * over many layers seconds.
 */
export const STAGE_FORWARD_BUCKETS_SECONDS: readonly number[] = Object.freeze([
  0.001, 0.0025, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1, 2.5, 5, 10,
]);

/** Tokens in one forward batch: 1 in pure decode, the prompt length in prefill (merged up to 4096). */
export const FORWARD_BATCH_BUCKETS_TOKENS: readonly number[] = Object.freeze([
  1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096,
]);

/**
 * Loading a stage's weights: ms with external data and no prepacking, 3-13 s per 672 MiB block
 * otherwise, minutes for a whole large stage read from disk.
 */
export const MODEL_LOAD_BUCKETS_SECONDS: readonly number[] = Object.freeze([
  0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600,
]);

/**
 * A whole request, accepted to finished: time to first token plus one decode step per generated
 * token (64 tokens at 20-200 ms each is 1-13 s), up to the long generations and the requests that
 * wait out a recovery.
 */
export const REQUEST_DURATION_BUCKETS_SECONDS: readonly number[] = Object.freeze([
  0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 60, 120, 300,
]);

/**
 * Accepted to its first micro-batch: zero while the pipeline has room, a few decode steps when
 * it is busy, seconds while no plan serves.
 */
export const QUEUE_WAIT_BUCKETS_SECONDS: readonly number[] = Object.freeze([
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
]);

/** Tokens of one request (prompt or generated): powers of two up to a 32k context. */
export const REQUEST_TOKENS_BUCKETS: readonly number[] = Object.freeze([
  1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768,
]);
