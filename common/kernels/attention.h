#ifndef BORA_ATTENTION_H
#define BORA_ATTENTION_H

/*
 * Attention for the new tokens of a batch of sequences, reading each sequence's KV cache in its
 * own storage (common/engine/kv-cache.ts): nothing is copied into a padded input. Per sequence b:
 *   qkv  (B, T, (A + 2K) D)   q, k, v projections of the new tokens (rows t >= count padded)
 *   cos, sin (B, T, D)        rotary tables of their positions
 *   rows[b].k, rows[b].v      the layer's cache storage, (K, capacity, D) each: slots
 *                             [0, length) hold cached keys (after rotary) and values, and this
 *                             call writes the new tokens' keys and values at slots
 *                             [length, length + count)
 *   rows[b].positions         absolute position of each cached slot, ascending
 * -> context (B, T, A D) (padded rows zero).
 * A query at position p sees the keys at positions p - window < q <= p (window 0: no limit), in
 * slot order. Query head a uses KV head a / G (G = A / K), as Mistral's grouped-query attention.
 */
struct attention_row {
  float *k, *v;
  const int *positions;
  long length, capacity;
  long count; /* new tokens of this sequence, <= T */
  long start; /* position of its first new token */
};

struct attention_job {
  const float *qkv, *cos, *sin;
  float *context;
  const struct attention_row *rows;
  long B, T, A, K, D;
  long window; /* 0: unlimited */
  float scale; /* 1 / sqrt(D) */
};

/* First: the new tokens' keys (after rotary) and values into the caches' storage. */
void attention_append(const struct attention_job *job);

/* Work units of the job: (sequence, KV head, tile of up to ATTENTION_LANES queries). */
long attention_units(const struct attention_job *job);

/* Largest number of keys one unit attends to (for its scratch buffer). */
long attention_max_keys(const struct attention_job *job);

/*
 * Then: units u with u % parts == part (interleaved, since causal tiles grow with t). scratch
 * holds attention_scratch_floats(job) floats. Thread-safe for distinct parts.
 */
void attention_part(const struct attention_job *job, int part, int parts, float *scratch);
long attention_scratch_floats(const struct attention_job *job);

#define ATTENTION_LANES 16

#endif
