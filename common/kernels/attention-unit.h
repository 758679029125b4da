/*
 * The attention unit of attention.c for W lanes (one query per lane): the including file sets
 * the target instruction set (#pragma GCC target), defines W, VF and VI (float and int vectors
 * of W lanes), SELECT, EXP and UNIT (names), and includes this once per lane width and
 * instruction set. Every lane computes with the same operations in the same
 * order at every width, so a query's result does not depend on the width its tile ran at.
 */
/* Lane-wise mask ? a : b (mask lanes all ones or all zeros). */
__attribute__((always_inline)) static inline VF SELECT(VI mask, VF a, VF b) { return (VF)((mask & (VI)a) | (~mask & (VI)b)); }

/*
 * exp(x) for x <= 0, lane by lane, within about 2 ulp of expf: x = n ln2 + r with |r| <= ln2 / 2,
 * exp(r) by its Taylor series to r^7 (error below 1e-8), times 2^n through the exponent bits.
 * Below -87 (where expf is denormal or 0) it returns 0. Every lane computes the same way.
 */
__attribute__((always_inline)) static inline VF EXP(VF x) {
  const VF zero = {0};
  const VI tiny = x < zero - 87.0f;
  x = SELECT(tiny, zero, x);
  const VF shifter = zero + 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
  const VF t = x * 1.44269504088896341f + shifter;
  const VF k = t - shifter;
  const VF r = (x - k * 0.693145751953125f) - k * 1.42860682030941723212e-6f;
  VF p = zero + 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const VI n = (VI)t - (VI)shifter; /* k as an integer, from t's low mantissa bits */
  const VF scale = (VF)((n + 127) << 23);
  return SELECT(tiny, zero, p * scale);
}

/*
 * One unit: queries j0 .. j0 + n - 1 of (sequence b, KV head h), query j being new token j / G
 * and query head h G + j % G. scratch: qT (D, LANES), out (D, LANES), scores (keys, LANES).
 */
static void UNIT(const struct attention_job *j, long b, long h, long j0, float *scratch) {
  const long T = j->T, A = j->A, K = j->K, D = j->D, G = groups(j);
  const long width = (A + 2 * K) * D;
  const struct attention_row *r = &j->rows[b];
  long n = r->count * G - j0;
  if (n > W) n = W;
  float *qT = scratch;                              /* (D, LANES) */
  float *out = qT + D * W;            /* (D, LANES) */
  float *scores = out + D * W;        /* (keys, LANES), from slot s_lo */
  long lo[W] = {0}, hi[W] = {0};
  float rotated[D];

  memset(qT, 0, sizeof(float) * (size_t)(D * W));
  for (long l = 0; l < n; l++) {
    const long t = (j0 + l) / G, a = h * G + (j0 + l) % G;
    rotary(j->qkv + (b * T + t) * width + a * D, j->cos + (b * T + t) * D, j->sin + (b * T + t) * D, D, rotated);
    for (long d = 0; d < D; d++) qT[d * W + l] = rotated[d];
    /* Visible slots [lo, hi): positions ascend with the slot, so the window is a suffix. */
    const long position = r->start + t;
    hi[l] = r->length + t + 1;
    lo[l] = 0;
    if (j->window > 0)
      while (lo[l] < hi[l] && position - slot_position(r, lo[l]) >= j->window) lo[l]++;
  }
  long s_lo = lo[0], s_hi = hi[0];
  for (long l = 1; l < n; l++) {
    if (lo[l] < s_lo) s_lo = lo[l];
    if (hi[l] > s_hi) s_hi = hi[l];
  }

  /*
   * Raw scores of every key in [s_lo, s_hi) for all lanes, KEYS keys at a time (independent
   * chains, 64 lanes in flight whatever W is; each key's sum still runs over d in order).
   */
  enum { KEYS = 64 / W };
  const float *keys = r->k + h * r->capacity * D;
  const VF *q = (const VF *)qT;
  VF *sv = (VF *)scores;
  long s = s_lo;
  for (; s + KEYS <= s_hi; s += KEYS) {
    const float *k0 = keys + s * D;
    VF acc[KEYS];
    for (int g = 0; g < KEYS; g++) acc[g] = (VF){0};
    for (long d = 0; d < D; d++)
      for (int g = 0; g < KEYS; g++) acc[g] += q[d] * k0[g * D + d];
    for (int g = 0; g < KEYS; g++) sv[s - s_lo + g] = acc[g] * j->scale;
  }
  for (; s < s_hi; s++) {
    const float *k0 = keys + s * D;
    VF a0 = {0};
    for (long d = 0; d < D; d++) a0 += q[d] * k0[d];
    sv[s - s_lo] = a0 * j->scale;
  }

  /* Softmax weights, W lanes at a time (each lane's sums run over the keys in slot order): keys a lane cannot see get weight 0. */
  VI lane_lo, lane_hi;
  for (int l = 0; l < W; l++) {
    lane_lo[l] = (int)(l < n ? lo[l] : 0);
    lane_hi[l] = (int)(l < n ? hi[l] : 0); /* unused lanes see nothing */
  }
  VF max = (VF){0} - INFINITY;
  for (long s2 = s_lo; s2 < s_hi; s2++) {
    const VI at = (VI){0} + (int)s2;
    const VI visible = (at >= lane_lo) & (at < lane_hi);
    const VF x = SELECT(visible, sv[s2 - s_lo], (VF){0} - INFINITY);
    max = SELECT(x > max, x, max);
  }
  VF total = {0};
  for (long s2 = s_lo; s2 < s_hi; s2++) {
    const VI at = (VI){0} + (int)s2;
    const VI visible = (at >= lane_lo) & (at < lane_hi);
    const VF e = SELECT(visible, EXP(sv[s2 - s_lo] - max), (VF){0});
    sv[s2 - s_lo] = e;
    total += e;
  }
  /* Unused lanes: a sum of 1 keeps their (zero) weights finite. */
  for (long l = n; l < W; l++) total[l] = 1.0f;
  for (long s2 = s_lo; s2 < s_hi; s2++) sv[s2 - s_lo] = sv[s2 - s_lo] / total;

  /*
   * context = sum of p v in slot order, per lane: outT (D, LANES) accumulates 8 dimensions at a
   * time in registers over every key (a weight of 0 adds exactly 0).
   */
  const float *values = r->v + h * r->capacity * D;
  VF *outT = (VF *)out; /* (D, LANES) */
  long d0 = 0;
  for (; d0 + 8 <= D; d0 += 8) {
    VF c0 = {0}, c1 = {0}, c2 = {0}, c3 = {0}, c4 = {0}, c5 = {0}, c6 = {0}, c7 = {0};
    for (long s2 = s_lo; s2 < s_hi; s2++) {
      const VF p = sv[s2 - s_lo];
      const float *v = values + s2 * D + d0;
      c0 += p * v[0];
      c1 += p * v[1];
      c2 += p * v[2];
      c3 += p * v[3];
      c4 += p * v[4];
      c5 += p * v[5];
      c6 += p * v[6];
      c7 += p * v[7];
    }
    outT[d0] = c0;
    outT[d0 + 1] = c1;
    outT[d0 + 2] = c2;
    outT[d0 + 3] = c3;
    outT[d0 + 4] = c4;
    outT[d0 + 5] = c5;
    outT[d0 + 6] = c6;
    outT[d0 + 7] = c7;
  }
  for (; d0 < D; d0++) {
    VF c0 = {0};
    for (long s2 = s_lo; s2 < s_hi; s2++) c0 += sv[s2 - s_lo] * values[s2 * D + d0];
    outT[d0] = c0;
  }
  for (long l = 0; l < n; l++) {
    const long t = (j0 + l) / G, a = h * G + (j0 + l) % G;
    float *dst = j->context + (b * T + t) * A * D + a * D;
    for (long d = 0; d < D; d++) dst[d] = outT[d][l];
  }
}

#undef W
#undef VF
#undef VI
#undef SELECT
#undef EXP
#undef UNIT
