/*
 * Node-API binding of the kernels (bora_kernels.node). Node-API keeps the binary independent of
 * the Node version; NAPI_MODULE_INIT makes it loadable from several worker threads.
 *
 *   pack(w, dtype, rows, threads) -> panels    w: (rows, K) as Float32Array (dtype "f32") or
 *                                              Uint16Array of bf16 / f16 bits; panels: same type
 *   linear(x, panels, dtype, N, out, rows, accumulate, threads)
 *                                              out (rows, N) (+)= x (rows, K) @ w^T
 *   attention(qkv, cos, sin, context, keys, values, positions, rows, dims, threads)
 *                                              attention over the KV caches in place
 *                                              (attention.h): keys / values / positions hold
 *                                              each sequence's layer storage, rows is an
 *                                              Int32Array [length, capacity, count, start] per
 *                                              sequence, dims [B, T, A, K, D, window]
 *   rmsNorm(x, rows, weight, eps, out, threads)  out (rows, H) = RMSNorm of x (rms-norm.h)
 *   siluMul(gateUp, rows, out)                 out (rows, I) = silu(gate) * up for gateUp (rows, 2I)
 *                                              holding gate then up in each row (SwiGLU)
 *   isa() -> "avx512" | "avx2" | "generic"
 * Block-quantized weights (quant.h; dtype "q8_0" | "q4_0" | "q4_k" | "q6_k"):
 *   linear(x, blocks, dtype, N, out, rows, accumulate, threads)
 *                                              the same entry: blocks is a Uint8Array holding the
 *                                              (N, K) matrix as ggml blocks, row by row, unpacked
 *   quantize(w, dtype, rows, threads) -> blocks
 *                                              w (rows, K) as Float32Array or Uint16Array of bf16
 *   dequantize(blocks, dtype, rows, threads) -> Float32Array (rows, K)
 *
 * Calls run synchronously on the calling thread plus pool threads; callers keep them off the
 * main event loop (Bora's engines run on worker threads).
 */
#include <node_api.h>
#include <stdbool.h>
#include <math.h>
#include <string.h>
#include <stdlib.h>
#include "attention.h"
#include "rms-norm.h"
#include "linear.h"
#include "quant.h"
#include "quant-q8.h"
#include "thread-pool.h"

static napi_value fail(napi_env env, const char *message) {
  napi_throw_range_error(env, "ERR_BORA_KERNEL", message);
  return NULL;
}

static bool typed_array(napi_env env, napi_value value, napi_typedarray_type want, void **data, size_t *length) {
  bool is_typed = false;
  if (napi_is_typedarray(env, value, &is_typed) != napi_ok || !is_typed) return false;
  napi_typedarray_type type;
  if (napi_get_typedarray_info(env, value, &type, length, data, NULL, NULL) != napi_ok) return false;
  return type == want;
}

static bool get_dtype(napi_env env, napi_value value, enum weight_dtype *dtype) {
  char name[8];
  size_t len = 0;
  if (napi_get_value_string_utf8(env, value, name, sizeof name, &len) != napi_ok) return false;
  if (strcmp(name, "f32") == 0) *dtype = WEIGHT_F32;
  else if (strcmp(name, "bf16") == 0) *dtype = WEIGHT_BF16;
  else if (strcmp(name, "f16") == 0) *dtype = WEIGHT_F16;
  else return false;
  return true;
}

static bool get_count(napi_env env, napi_value value, int64_t *out) {
  return napi_get_value_int64(env, value, out) == napi_ok;
}

struct pack_job {
  const void *src;
  void *dst;
  enum weight_dtype dtype;
  long N, K;
};

static void pack_part(void *arg, int part, int parts) {
  const struct pack_job *job = arg;
  /* Whole panels per part, so no two threads write the same panel. */
  const long panels = (job->N + PANEL - 1) / PANEL;
  const long n0 = panels * part / parts * PANEL, n1_ = panels * (part + 1) / parts * PANEL;
  const long n1 = n1_ < job->N ? n1_ : job->N;
  if (n0 < n1) linear_pack(job->src, job->dst, job->dtype, job->K, n0, n1);
}

static napi_value pack(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  enum weight_dtype dtype;
  int64_t rows, threads;
  if (argc < 4 || !get_dtype(env, argv[1], &dtype) || !get_count(env, argv[2], &rows) || !get_count(env, argv[3], &threads)) {
    return fail(env, "pack(w, dtype, rows, threads): dtype is f32, bf16 or f16; rows and threads are numbers");
  }
  const napi_typedarray_type type = dtype == WEIGHT_F32 ? napi_float32_array : napi_uint16_array;
  void *src;
  size_t length;
  if (!typed_array(env, argv[0], type, &src, &length)) return fail(env, "pack: w must be a Float32Array for f32, a Uint16Array for bf16 / f16");
  if (rows <= 0 || length == 0 || length % (size_t)rows != 0) return fail(env, "pack: w's length is not a positive multiple of rows");
  const long N = (long)rows, K = (long)(length / (size_t)rows);
  const size_t elem = dtype == WEIGHT_F32 ? 4 : 2;
  const size_t packed = (size_t)linear_packed_length(N, K);
  void *dst;
  napi_value buffer, result;
  if (napi_create_arraybuffer(env, packed * elem, &dst, &buffer) != napi_ok) return fail(env, "pack: out of memory");
  memset(dst, 0, packed * elem);
  struct pack_job job = {src, dst, dtype, N, K};
  pool_run(pack_part, &job, threads < 1 ? 1 : (int)threads);
  napi_create_typedarray(env, type, packed, buffer, 0, &result);
  return result;
}

static void linear_part(void *arg, int part, int parts) {
  const struct linear_job *job = arg;
  /* Panels go to threads in pairs (a tile covers two panels). */
  const long pairs = ((job->N + PANEL - 1) / PANEL + 1) / 2;
  const long panels = (job->N + PANEL - 1) / PANEL;
  long p0 = pairs * part / parts * 2, p1 = pairs * (part + 1) / parts * 2;
  if (p1 > panels) p1 = panels;
  if (p0 < p1) linear_panels(job, p0, p1);
}

static napi_value quant_linear(napi_env env, napi_value *argv, enum quant_type type);
static bool get_quant_type(napi_env env, napi_value value, enum quant_type *type);

static napi_value linear(napi_env env, napi_callback_info info) {
  size_t argc = 8;
  napi_value argv[8];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  enum quant_type qtype;
  if (argc >= 8 && get_quant_type(env, argv[2], &qtype)) return quant_linear(env, argv, qtype);
  enum weight_dtype dtype;
  int64_t N, rows, threads;
  bool accumulate;
  if (argc < 8 || !get_dtype(env, argv[2], &dtype) || !get_count(env, argv[3], &N) || !get_count(env, argv[5], &rows) ||
      napi_get_value_bool(env, argv[6], &accumulate) != napi_ok || !get_count(env, argv[7], &threads)) {
    return fail(env, "linear(x, panels, dtype, N, out, rows, accumulate, threads): bad argument types");
  }
  float *x, *out;
  void *panels;
  size_t xLen, pLen, outLen;
  const napi_typedarray_type ptype = dtype == WEIGHT_F32 ? napi_float32_array : napi_uint16_array;
  if (!typed_array(env, argv[0], napi_float32_array, (void **)&x, &xLen) || !typed_array(env, argv[4], napi_float32_array, (void **)&out, &outLen) ||
      !typed_array(env, argv[1], ptype, &panels, &pLen)) {
    return fail(env, "linear: x and out must be Float32Arrays, panels a Float32Array (f32) or Uint16Array (bf16 / f16)");
  }
  if (rows <= 0 || N <= 0 || xLen % (size_t)rows != 0) return fail(env, "linear: x's length is not a multiple of rows");
  const long K = (long)(xLen / (size_t)rows);
  if (K == 0 || pLen != (size_t)linear_packed_length((long)N, K)) return fail(env, "linear: panels do not hold an N x K matrix for x's row length K");
  if (outLen != (size_t)rows * (size_t)N) return fail(env, "linear: out must hold rows x N values");

  struct linear_job job = {x, panels, dtype, out, (long)rows, (long)N, K, accumulate};
  const long pairs = ((N + PANEL - 1) / PANEL + 1) / 2;
  long parts = threads < 1 ? 1 : threads;
  if (parts > pairs) parts = pairs;
  pool_run(linear_part, &job, (int)parts);
  return NULL;
}

/* ---- The layer step's own kernels (attention over the caches in place, RMSNorm) ---- */

struct attention_call {
  const struct attention_job *job;
  float *scratch; /* parts x scratch_floats */
  long scratch_floats;
};

static void attention_work(void *arg, int part, int parts) {
  const struct attention_call *call = arg;
  attention_part(call->job, part, parts, call->scratch + (size_t)part * (size_t)call->scratch_floats);
}

/* Element i of a JavaScript array as a typed array of `type` with at least `need` elements. */
static bool element_array(napi_env env, napi_value list, uint32_t i, napi_typedarray_type type, size_t need, void **data) {
  napi_value value;
  size_t length;
  if (napi_get_element(env, list, i, &value) != napi_ok) return false;
  return typed_array(env, value, type, data, &length) && length >= need;
}

static napi_value attention(napi_env env, napi_callback_info info) {
  size_t argc = 10;
  napi_value argv[10];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t *dims, *meta;
  size_t dimsLen, metaLen;
  int64_t threads;
  if (argc < 10 || !typed_array(env, argv[8], napi_int32_array, (void **)&dims, &dimsLen) || dimsLen != 6 ||
      !typed_array(env, argv[7], napi_int32_array, (void **)&meta, &metaLen) || !get_count(env, argv[9], &threads)) {
    return fail(env, "attention(qkv, cos, sin, context, keys, values, positions, rows, dims, threads): rows is an Int32Array of [length, capacity, count, start] per sequence, dims an Int32Array [B, T, A, K, D, window]");
  }
  const long B = dims[0], T = dims[1], A = dims[2], K = dims[3], D = dims[4], window = dims[5];
  if (B <= 0 || T <= 0 || A <= 0 || K <= 0 || D <= 0 || D % 2 != 0 || A % K != 0 || window < 0) return fail(env, "attention: dims must be positive, D even, A a multiple of K, window >= 0");
  if (metaLen != (size_t)(4 * B)) return fail(env, "attention: rows must hold 4 values per sequence");
  const size_t expected[4] = {(size_t)(B * T * (A + 2 * K) * D), (size_t)(B * T * D), (size_t)(B * T * D), (size_t)(B * T * A * D)};
  float *arrays[4];
  for (int i = 0; i < 4; i++) {
    size_t length;
    if (!typed_array(env, argv[i], napi_float32_array, (void **)&arrays[i], &length)) return fail(env, "attention: qkv, cos, sin and context must be Float32Arrays");
    if (length != expected[i]) return fail(env, "attention: an array's length does not match dims");
  }
  bool lists = true;
  uint32_t counts[3] = {0, 0, 0};
  for (int i = 0; i < 3; i++) lists = lists && napi_get_array_length(env, argv[4 + i], &counts[i]) == napi_ok && counts[i] == (uint32_t)B;
  if (!lists) return fail(env, "attention: keys, values and positions must be arrays with one entry per sequence");
  struct attention_row *rows = calloc((size_t)B, sizeof *rows);
  if (rows == NULL) return fail(env, "attention: out of memory");
  for (long b = 0; b < B; b++) {
    const long length = meta[4 * b], capacity = meta[4 * b + 1], count = meta[4 * b + 2], start = meta[4 * b + 3];
    if (length < 0 || count <= 0 || count > T || start < 0 || length + count > capacity) {
      free(rows);
      return fail(env, "attention: a sequence needs 0 <= length, 0 < count <= T and length + count <= capacity");
    }
    void *k, *v, *positions;
    const size_t cells = (size_t)(K * capacity * D);
    if (!element_array(env, argv[4], (uint32_t)b, napi_float32_array, cells, &k) || !element_array(env, argv[5], (uint32_t)b, napi_float32_array, cells, &v) ||
        !element_array(env, argv[6], (uint32_t)b, napi_int32_array, (size_t)length, &positions)) {
      free(rows);
      return fail(env, "attention: each sequence's keys and values must be Float32Arrays of K x capacity x D, its positions an Int32Array of at least length");
    }
    rows[b] = (struct attention_row){k, v, positions, length, capacity, count, start};
  }
  struct attention_job job = {arrays[0], arrays[1], arrays[2], arrays[3], rows, B, T, A, K, D, window, 1.0f / sqrtf((float)D)};
  attention_append(&job);
  long parts = threads < 1 ? 1 : threads;
  const long units = attention_units(&job);
  if (parts > units) parts = units;
  const long floats = (attention_scratch_floats(&job) + 15) / 16 * 16;
  float *scratch = aligned_alloc(64, sizeof(float) * (size_t)(floats * parts));
  if (scratch == NULL) {
    free(rows);
    return fail(env, "attention: out of memory");
  }
  struct attention_call call = {&job, scratch, floats};
  pool_run(attention_work, &call, (int)parts);
  free(scratch);
  free(rows);
  return NULL;
}

struct norm_job {
  const float *x, *weight;
  float *out;
  long rows, width;
  double eps;
};

static void norm_part(void *arg, int part, int parts) {
  const struct norm_job *job = arg;
  rms_norm_rows(job->x, job->weight, job->out, job->width, job->eps, job->rows * part / parts, job->rows * (part + 1) / parts);
}

static napi_value rms_norm(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  float *x, *weight, *out;
  size_t xLen, wLen, outLen;
  int64_t rows, threads;
  double eps;
  if (argc < 6 || !typed_array(env, argv[0], napi_float32_array, (void **)&x, &xLen) || !get_count(env, argv[1], &rows) ||
      !typed_array(env, argv[2], napi_float32_array, (void **)&weight, &wLen) || napi_get_value_double(env, argv[3], &eps) != napi_ok ||
      !typed_array(env, argv[4], napi_float32_array, (void **)&out, &outLen) || !get_count(env, argv[5], &threads)) {
    return fail(env, "rmsNorm(x, rows, weight, eps, out, threads): x, weight and out are Float32Arrays, rows, eps and threads numbers");
  }
  if (rows <= 0 || wLen == 0 || xLen != (size_t)rows * wLen || outLen != xLen) return fail(env, "rmsNorm: x and out must be (rows, width) for a weight of width values");
  struct norm_job job = {x, weight, out, (long)rows, (long)wLen, eps};
  /* Threads only pay off for many rows (a prompt); one decode row is a few microseconds. */
  long parts = threads < 1 ? 1 : threads;
  if (parts > rows / 8) parts = rows / 8 < 1 ? 1 : rows / 8;
  pool_run(norm_part, &job, (int)parts);
  return NULL;
}

/* ---- end of the layer step's kernels ---- */

static napi_value silu_mul(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  float *gate_up, *out;
  size_t inLen, outLen;
  int64_t rows;
  if (argc < 3 || !typed_array(env, argv[0], napi_float32_array, (void **)&gate_up, &inLen) || !get_count(env, argv[1], &rows) ||
      !typed_array(env, argv[2], napi_float32_array, (void **)&out, &outLen)) {
    return fail(env, "siluMul(gateUp, rows, out): gateUp and out are Float32Arrays, rows a number");
  }
  if (rows <= 0 || inLen != 2 * outLen || outLen % (size_t)rows != 0) return fail(env, "siluMul: gateUp must be (rows, 2I) and out (rows, I)");
  const size_t width = outLen / (size_t)rows;
  for (size_t r = 0; r < (size_t)rows; r++) {
    const float *gate = gate_up + r * 2 * width, *up = gate + width;
    float *dst = out + r * width;
    /* silu(g) = g * sigmoid(g), in float32 as transformers computes it. */
    for (size_t i = 0; i < width; i++) dst[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
  }
  return NULL;
}

/* ---- Block-quantized weights (quant.h, quant.c, quant-encode.c) ---- */

static bool get_quant_type(napi_env env, napi_value value, enum quant_type *type) {
  char name[8];
  size_t len = 0;
  if (napi_get_value_string_utf8(env, value, name, sizeof name, &len) != napi_ok) return false;
  if (strcmp(name, "q8_0") == 0) *type = QUANT_Q8_0;
  else if (strcmp(name, "q4_0") == 0) *type = QUANT_Q4_0;
  else if (strcmp(name, "q4_k") == 0) *type = QUANT_Q4_K;
  else if (strcmp(name, "q6_k") == 0) *type = QUANT_Q6_K;
  else return false;
  return true;
}

static void quant_linear_part(void *arg, int part, int parts) {
  const struct quant_job *job = arg;
  /* Whole units of QUANT_ROWS_PER_UNIT weight rows per thread. */
  const long units = (job->N + QUANT_ROWS_PER_UNIT - 1) / QUANT_ROWS_PER_UNIT;
  long n0 = units * part / parts * QUANT_ROWS_PER_UNIT, n1 = units * (part + 1) / parts * QUANT_ROWS_PER_UNIT;
  if (n1 > job->N) n1 = job->N;
  quant_linear_rows(job, n0, n1);
}

static napi_value quant_linear(napi_env env, napi_value *argv, enum quant_type type) {
  int64_t N, rows, threads;
  bool accumulate;
  if (!get_count(env, argv[3], &N) || !get_count(env, argv[5], &rows) || napi_get_value_bool(env, argv[6], &accumulate) != napi_ok ||
      !get_count(env, argv[7], &threads)) {
    return fail(env, "linear(x, blocks, dtype, N, out, rows, accumulate, threads): bad argument types");
  }
  float *x, *out;
  void *blocks;
  size_t xLen, bLen, outLen;
  if (!typed_array(env, argv[0], napi_float32_array, (void **)&x, &xLen) || !typed_array(env, argv[4], napi_float32_array, (void **)&out, &outLen) ||
      !typed_array(env, argv[1], napi_uint8_array, &blocks, &bLen)) {
    return fail(env, "linear: x and out must be Float32Arrays, quantized blocks a Uint8Array");
  }
  if (rows <= 0 || N <= 0 || xLen % (size_t)rows != 0) return fail(env, "linear: x's length is not a multiple of rows");
  const long K = (long)(xLen / (size_t)rows);
  const long rowBytes = quant_row_bytes(type, K);
  if (rowBytes == 0) return fail(env, "linear: x's row length K is not whole blocks of the quantized type");
  if (bLen != (size_t)rowBytes * (size_t)N) return fail(env, "linear: blocks do not hold an N x K matrix for x's row length K");
  if (outLen != (size_t)rows * (size_t)N) return fail(env, "linear: out must hold rows x N values");
  /* Integer dot products over 8-bit activations unless BORA_QUANT_ACTIVATIONS=f32 asks for the
     exact float32 path (read per call, so that a test can switch it). */
  const char *mode = getenv("BORA_QUANT_ACTIVATIONS");
  struct quant_x8 x8 = {0};
  const bool exact = mode != NULL && strcmp(mode, "f32") == 0;
  if (!exact && !quant_x8_prepare(&x8, x, (long)rows, K)) return fail(env, "linear: out of memory for the 8-bit activations");
  struct quant_job job = {x, blocks, type, out, (long)rows, (long)N, K, accumulate, exact ? NULL : &x8};
  const long units = ((long)N + QUANT_ROWS_PER_UNIT - 1) / QUANT_ROWS_PER_UNIT;
  long parts = threads < 1 ? 1 : threads;
  if (parts > units) parts = units;
  pool_run(quant_linear_part, &job, (int)parts);
  if (!exact) quant_x8_free(&x8);
  return NULL;
}

struct quant_encode_job {
  enum quant_type type;
  const void *src;
  int bf16;
  unsigned char *dst;
  float *values;
  long rows, K;
};

static void quantize_part(void *arg, int part, int parts) {
  const struct quant_encode_job *job = arg;
  quant_quantize_rows(job->type, job->src, job->bf16, job->dst, job->K, job->rows * part / parts, job->rows * (part + 1) / parts);
}

static void dequantize_part(void *arg, int part, int parts) {
  const struct quant_encode_job *job = arg;
  quant_dequantize_rows(job->type, job->src, job->values, job->K, job->rows * part / parts, job->rows * (part + 1) / parts);
}

static napi_value quantize(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  enum quant_type type;
  int64_t rows, threads;
  if (argc < 4 || !get_quant_type(env, argv[1], &type) || !get_count(env, argv[2], &rows) || !get_count(env, argv[3], &threads)) {
    return fail(env, "quantize(w, dtype, rows, threads): dtype is q8_0, q4_0, q4_k or q6_k; rows and threads are numbers");
  }
  void *src;
  size_t length;
  int bf16 = 0;
  if (!typed_array(env, argv[0], napi_float32_array, &src, &length)) {
    if (!typed_array(env, argv[0], napi_uint16_array, &src, &length)) return fail(env, "quantize: w must be a Float32Array or a Uint16Array of bf16 bits");
    bf16 = 1;
  }
  if (rows <= 0 || length == 0 || length % (size_t)rows != 0) return fail(env, "quantize: w's length is not a positive multiple of rows");
  const long K = (long)(length / (size_t)rows);
  const long rowBytes = quant_row_bytes(type, K);
  if (rowBytes == 0) return fail(env, "quantize: the row length is not whole blocks of the type");
  void *dst;
  napi_value buffer, result;
  if (napi_create_arraybuffer(env, (size_t)rowBytes * (size_t)rows, &dst, &buffer) != napi_ok) return fail(env, "quantize: out of memory");
  struct quant_encode_job job = {type, src, bf16, dst, NULL, (long)rows, K};
  long parts = threads < 1 ? 1 : threads;
  if (parts > rows) parts = rows;
  pool_run(quantize_part, &job, (int)parts);
  napi_create_typedarray(env, napi_uint8_array, (size_t)rowBytes * (size_t)rows, buffer, 0, &result);
  return result;
}

static napi_value dequantize(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  enum quant_type type;
  int64_t rows, threads;
  void *src;
  size_t length;
  if (argc < 4 || !typed_array(env, argv[0], napi_uint8_array, &src, &length) || !get_quant_type(env, argv[1], &type) || !get_count(env, argv[2], &rows) ||
      !get_count(env, argv[3], &threads)) {
    return fail(env, "dequantize(blocks, dtype, rows, threads): blocks is a Uint8Array, dtype q8_0, q4_0, q4_k or q6_k");
  }
  const long one = quant_row_bytes(type, type == QUANT_Q4_K || type == QUANT_Q6_K ? 256 : 32);
  if (rows <= 0 || length % (size_t)rows != 0 || (length / (size_t)rows) % (size_t)one != 0) return fail(env, "dequantize: blocks are not rows of whole blocks");
  const long K = (long)(length / (size_t)rows / (size_t)one) * (type == QUANT_Q4_K || type == QUANT_Q6_K ? 256 : 32);
  void *dst;
  napi_value buffer, result;
  if (napi_create_arraybuffer(env, (size_t)K * (size_t)rows * sizeof(float), &dst, &buffer) != napi_ok) return fail(env, "dequantize: out of memory");
  struct quant_encode_job job = {type, src, 0, NULL, dst, (long)rows, K};
  long parts = threads < 1 ? 1 : threads;
  if (parts > rows) parts = rows;
  pool_run(dequantize_part, &job, (int)parts);
  napi_create_typedarray(env, napi_float32_array, (size_t)K * (size_t)rows, buffer, 0, &result);
  return result;
}

/* ---- end of block-quantized weights ---- */

static napi_value isa(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value result;
  napi_create_string_utf8(env, linear_isa(), NAPI_AUTO_LENGTH, &result);
  return result;
}

static void export_fn(napi_env env, napi_value exports, const char *name, napi_callback cb) {
  napi_value fn;
  napi_create_function(env, name, NAPI_AUTO_LENGTH, cb, NULL, &fn);
  napi_set_named_property(env, exports, name, fn);
}

NAPI_MODULE_INIT() {
  export_fn(env, exports, "pack", pack);
  export_fn(env, exports, "linear", linear);
  export_fn(env, exports, "attention", attention);
  export_fn(env, exports, "rmsNorm", rms_norm);
  export_fn(env, exports, "siluMul", silu_mul);
  export_fn(env, exports, "isa", isa);
  export_fn(env, exports, "quantize", quantize);
  export_fn(env, exports, "dequantize", dequantize);
  return exports;
}
