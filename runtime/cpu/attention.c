/* CPU kernel for ONNX Attention (opsets 23-25), following onnx/reference/ops/op_attention.py:
 *
 *   S = scale * Q K^T            (per batch, query head; GQA maps head h to kv head h / (Hq/Hkv))
 *   S = softcap * tanh(S / softcap)            if softcap > 0
 *   S += bias                    attn_mask (bool: 0 / -inf, else additive; a short last dim is
 *                                padded with -inf) + causal (key j allowed iff j <= i + offset)
 *                                + sliding window + nonpad_kv_seqlen padding
 *   P = softmax(S)               a row whose bias is -inf everywhere becomes all zeros
 *   Y = P V
 * offset = past_seq (internal cache), nonpad_kv_seqlen[b] - q_seq (external cache) or 0.
 * Work is split into (batch, head, block of query rows) tasks run in parallel; each task does
 * one GEMM for the scores and one for the output, with a single-threaded BLAS (the
 * linalg family's drt_sgemm_serial). */
#if defined(__GNUC__) && !defined(__clang__)
/* Lets GCC if-convert float selects so the row loops vectorize (see runtime/cpu/reduce.h);
 * nothing here reads floating-point exception flags. */
#pragma GCC optimize("no-trapping-math")
#endif

#include <inttypes.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "ir/infer_reduce.h"
#include "runtime/cpu/linalg.h" /* drt_sgemm_serial, drt_blas_threads_for_workers */
#include "runtime/cpu/reduce.h"

#define Q_BLOCK 64

typedef struct view4 { /* element (b, h, s, 0) is at base + b*bs + h*hs + s*ld */
  const float *base;
  int64_t bs, hs, ld;
} view4;

typedef struct attn_job {
  const drt_attention_geom *g;
  view4 q, k, v;
  float *y;
  int64_t y_bs, y_hs, y_ld;
  float *qk;     /* (B, Hq, Sq, T) or NULL */
  int mode;      /* qk_matmul_output_mode */
  float scale, softcap;
  bool causal;
  int64_t left, right; /* window sizes, -1 = unbounded */
  const int64_t *nonpad;
  const void *mask;
  drt_dtype mask_dt;
  int64_t ms[4], mask_len;
  int64_t nqb; /* query blocks per (b, h) */
  atomic_bool oom; /* set when a task could not allocate its scratch */
} attn_job;

static view4 view_of(const float *data, bool is_3d, int64_t heads, int64_t seq, int64_t hd) {
  view4 v;
  v.base = data;
  if (is_3d) { /* (B, S, H*hd) */
    v.bs = seq * heads * hd;
    v.hs = hd;
    v.ld = heads * hd;
  } else { /* (B, H, S, hd) */
    v.bs = heads * seq * hd;
    v.hs = seq * hd;
    v.ld = hd;
  }
  return v;
}

/* Keys [lo, hi) that causal masking, the sliding window, nonpad_kv_seqlen and the mask's
 * length allow for query i (absolute position i + offset); all other keys get bias -inf. */
static void key_range(const attn_job *j, int64_t i, int64_t offset, int64_t valid, int64_t *lo, int64_t *hi) {
  int64_t p = i + offset, l = 0, h = valid;
  if (j->mask && j->mask_len < h) h = j->mask_len;
  if (j->causal && p + 1 < h) h = p + 1;
  if (j->right >= 0 && p + j->right + 1 < h) h = p + j->right + 1;
  if (j->left >= 0 && p - j->left > l) l = p - j->left;
  *lo = l;
  *hi = h > l ? h : l;
}

/* Adds attn_mask row (b, h, i) to row[lo..hi); returns whether any key stays allowed (its
 * bias is not -inf). */
static bool apply_mask(const attn_job *j, int64_t b, int64_t h, int64_t i, float *row, int64_t lo, int64_t hi) {
  int64_t base = b * j->ms[0] + h * j->ms[1] + i * j->ms[2], st = j->ms[3];
  bool any = false;
  if (j->mask_dt == DRT_DTYPE_BOOL) {
    const uint8_t *m = (const uint8_t *)j->mask + base;
    for (int64_t k = lo; k < hi; k++) {
      bool on = m[k * st] != 0;
      row[k] = on ? row[k] : -INFINITY;
      any |= on;
    }
  } else if (j->mask_dt == DRT_DTYPE_FLOAT32) {
    const float *m = (const float *)j->mask + base;
    for (int64_t k = lo; k < hi; k++) {
      row[k] += m[k * st];
      any |= m[k * st] != -INFINITY;
    }
  } else {
    for (int64_t k = lo; k < hi; k++) {
      float v = (float)drt_load_f64(j->mask_dt, j->mask, (size_t)(base + k * st));
      row[k] += v;
      any |= v != -INFINITY;
    }
  }
  return any;
}

static void attn_task(const attn_job *j, int64_t t, float *s) {
  const drt_attention_geom *g = j->g;
  int64_t qb = t % j->nqb, bh = t / j->nqb;
  int64_t b = bh / g->q_heads, h = bh % g->q_heads;
  int64_t kvh = h / (g->q_heads / g->kv_heads);
  int64_t i0 = qb * Q_BLOCK, rows = g->q_seq - i0 < Q_BLOCK ? g->q_seq - i0 : Q_BLOCK;
  int64_t T = g->total_seq;
  const float *qp = j->q.base + b * j->q.bs + h * j->q.hs + i0 * j->q.ld;
  const float *kp = j->k.base + b * j->k.bs + kvh * j->k.hs;
  const float *vp = j->v.base + b * j->v.bs + kvh * j->v.hs;
  float *yp = j->y + b * j->y_bs + h * j->y_hs + i0 * j->y_ld;
  int64_t offset = g->has_past ? g->past_seq : j->nonpad ? j->nonpad[b] - g->q_seq : 0;
  int64_t valid = j->nonpad ? j->nonpad[b] : T;
  int64_t lo[Q_BLOCK], hi[Q_BLOCK];
  /* Scores are only needed for keys below the largest allowed bound of the block (all of
   * them when qk_matmul_output is requested). */
  int64_t ncols = j->qk ? T : 0;
  for (int64_t r = 0; r < rows; r++) {
    key_range(j, i0 + r, offset, valid, &lo[r], &hi[r]);
    if (hi[r] > ncols) ncols = hi[r];
  }
  if (ncols > 0) drt_sgemm_serial(false, true, rows, ncols, g->head, j->scale, qp, j->q.ld, kp, j->k.ld, 0.0f, s, T);
  for (int64_t r = 0; r < rows; r++) {
    int64_t i = i0 + r, l = lo[r], e = hi[r];
    float *row = s + r * T;
    float *qk = j->qk ? j->qk + ((b * g->q_heads + h) * g->q_seq + i) * T : NULL;
    if (j->softcap > 0) {
      float c = j->softcap, ic = 1.0f / j->softcap;
      for (int64_t k = 0; k < ncols; k++) row[k] = c * drt_fast_tanhf(row[k] * ic);
    }
    if (qk && j->mode <= 1) memcpy(qk, row, (size_t)T * sizeof(float));
    bool any = l < e;
    if (any && j->mask) any = apply_mask(j, b, h, i, row, l, e);
    if (qk && j->mode == 2) {
      for (int64_t k = 0; k < T; k++) qk[k] = k >= l && k < e ? row[k] : -INFINITY;
    }
    float mx = any ? drt_rd_max(row + l, e - l) : -INFINITY;
    if (mx == -INFINITY) { /* every key masked: a zero row (the reference's guard) */
      memset(row, 0, (size_t)ncols * sizeof(float));
    } else {
      double sum = drt_rd_exp_sum(row + l, row + l, e - l, mx);
      drt_rd_scale(row + l, row + l, e - l, (float)(1.0 / sum));
      memset(row, 0, (size_t)l * sizeof(float));
      memset(row + e, 0, (size_t)(ncols - e) * sizeof(float));
    }
    if (qk && j->mode == 3) memcpy(qk, row, (size_t)T * sizeof(float));
  }
  drt_sgemm_serial(false, false, rows, g->v_head, ncols, 1.0f, s, T, vp, j->v.ld, 0.0f, yp, j->y_ld);
}

static void attn_run(void *arg, int64_t begin, int64_t end) {
  attn_job *j = arg;
  int64_t rows = j->g->q_seq < Q_BLOCK ? j->g->q_seq : Q_BLOCK;
  float *s = malloc((size_t)(rows * j->g->total_seq > 0 ? rows * j->g->total_seq : 1) * sizeof(float));
  if (!s) {
    atomic_store(&j->oom, true);
    return;
  }
  for (int64_t t = begin; t < end; t++) attn_task(j, t, s);
  free(s);
}

/* Writes concat(past, cur) along the sequence axis into dst (B, Hkv, T, hd). */
static void build_cache(float *dst, const float *past, view4 cur, const drt_attention_geom *g, int64_t hd) {
  for (int64_t b = 0; b < g->batch; b++) {
    for (int64_t h = 0; h < g->kv_heads; h++) {
      float *d = dst + (b * g->kv_heads + h) * g->total_seq * hd;
      if (g->past_seq > 0)
        memcpy(d, past + (b * g->kv_heads + h) * g->past_seq * hd, (size_t)(g->past_seq * hd) * sizeof(float));
      d += g->past_seq * hd;
      const float *c = cur.base + b * cur.bs + h * cur.hs;
      for (int64_t s = 0; s < g->kv_seq; s++) memcpy(d + s * hd, c + s * cur.ld, (size_t)hd * sizeof(float));
    }
  }
}

drt_status drt_cpu_attention(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out) {
  const drt_shape *shapes[8] = {NULL};
  int ni = n->num_inputs < 8 ? n->num_inputs : 8;
  for (int i = 0; i < ni; i++) shapes[i] = in[i].data ? &in[i].shape : NULL;
  drt_attention_geom g;
  DRT_RETURN_IF_ERROR(drt_attention_resolve(n, shapes, ni, &g));
  for (int i = 0; i < 3; i++)
    if (in[i].dtype != DRT_DTYPE_FLOAT32)
      return DRT_ERROR(DRT_STATUS_INTERNAL, "input %d: unexpected dtype %s", i, drt_dtype_name(in[i].dtype));
  attn_job j;
  memset(&j, 0, sizeof j);
  atomic_init(&j.oom, false);
  j.g = &g;
  j.q = view_of(in[0].data, g.is_3d, g.q_heads, g.q_seq, g.head);
  j.k = view_of(in[1].data, g.is_3d, g.kv_heads, g.kv_seq, g.head);
  j.v = view_of(in[2].data, g.is_3d, g.kv_heads, g.kv_seq, g.v_head);
  j.y = out[0].data;
  if (g.is_3d) {
    j.y_bs = g.q_seq * g.q_heads * g.v_head;
    j.y_hs = g.v_head;
    j.y_ld = g.q_heads * g.v_head;
  } else {
    j.y_bs = g.q_heads * g.q_seq * g.v_head;
    j.y_hs = g.q_seq * g.v_head;
    j.y_ld = g.v_head;
  }
  j.mode = (int)drt_node_attr_int(n, "qk_matmul_output_mode", 0);
  j.qk = n->num_outputs > 3 ? out[3].data : NULL;
  const drt_attr *sa = drt_node_attr(n, "scale");
  j.scale = sa ? drt_node_attr_float(n, "scale", 1.0f) : (float)(1.0 / sqrt((double)g.head));
  j.softcap = drt_node_attr_float(n, "softcap", 0.0f);
  j.causal = drt_node_attr_int(n, "is_causal", 0) != 0;
  j.left = drt_node_attr_int(n, "left_window_size", -1);
  j.right = drt_node_attr_int(n, "right_window_size", -1);
  if (g.has_nonpad) {
    j.nonpad = in[6].data;
    for (int64_t b = 0; b < g.batch; b++)
      if (j.nonpad[b] < 0 || j.nonpad[b] > g.total_seq)
        return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "nonpad_kv_seqlen[%lld] = %lld is outside [0, %lld]",
                         (long long)b, (long long)j.nonpad[b], (long long)g.total_seq);
  }
  if (g.has_mask) {
    j.mask = in[3].data;
    j.mask_dt = in[3].dtype;
    j.mask_len = g.mask.dims[g.mask.rank - 1];
    drt_shape target = {4, {g.batch, g.q_heads, g.q_seq, j.mask_len}};
    drt_broadcast_strides(&g.mask, &target, j.ms);
  }

  /* KV cache: present = concat(past, current) along the sequence axis. */
  float *owned[2] = {NULL, NULL};
  bool want_present[2] = {n->num_outputs > 1, n->num_outputs > 2};
  view4 *kv[2] = {&j.k, &j.v};
  int64_t hds[2] = {g.head, g.v_head};
  drt_status st = DRT_OK;
  for (int c = 0; c < 2 && !st; c++) {
    if (!g.has_past && !want_present[c]) continue;
    float *dst = want_present[c] ? out[1 + c].data : NULL;
    if (!dst) {
      dst = owned[c] = malloc((size_t)(g.batch * g.kv_heads * g.total_seq * hds[c] + 1) * sizeof(float));
      if (!dst) {
        st = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "attention KV cache buffer");
        break;
      }
    }
    build_cache(dst, g.has_past ? in[4 + c].data : NULL, *kv[c], &g, hds[c]);
    *kv[c] = view_of(dst, false, g.kv_heads, g.total_seq, hds[c]);
  }
  if (!st && g.batch * g.q_heads * g.q_seq > 0) {
    if (g.total_seq == 0) {
      memset(out[0].data, 0, (size_t)(g.batch * g.q_heads * g.q_seq * g.v_head) * sizeof(float));
    } else {
      j.nqb = (g.q_seq + Q_BLOCK - 1) / Q_BLOCK;
      drt_blas_threads_for_workers();
      drt_parallel_for(ctx, g.batch * g.q_heads * j.nqb, 1, attn_run, &j);
      if (atomic_load(&j.oom)) st = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "attention score buffer");
    }
  }
  free(owned[0]);
  free(owned[1]);
  return st;
}

/* ---- RotaryEmbedding ------------------------------------------------------------------- */
/* For each (batch, position, head) row of D features, the first R are rotated in pairs
 * (x[i], x[i + R/2]), or (x[2i], x[2i + 1]) when interleaved, by the angle whose cosine and
 * sine are cache row p (p = position_ids[b, s] when given, else (b, s)): y1 = c x1 - s x2,
 * y2 = s x1 + c x2; the other D - R features are copied. */
drt_status drt_cpu_rotary_embedding(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out) {
  (void)ctx;
  const drt_tensor *x = &in[0], *pos = n->num_inputs > 3 && in[3].data ? &in[3] : NULL;
  drt_rotary_geom g;
  DRT_RETURN_IF_ERROR(drt_rotary_resolve(n, &x->shape, &in[1].shape, pos ? &pos->shape : NULL, &g));
  const float *xs = x->data, *cc = in[1].data, *sc = in[2].data;
  const int64_t *pid = pos ? pos->data : NULL;
  float *ys = out[0].data;
  int64_t half = g.rot / 2;
  for (int64_t b = 0; b < g.batch; b++)
    for (int64_t s = 0; s < g.seq; s++) {
      int64_t row = g.cache_per_batch ? b * g.seq + s : s;
      if (pid) {
        row = pid[b * g.seq + s];
        if (row < 0 || row >= g.positions)
          return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT,
                           "position_ids[%" PRId64 ", %" PRId64 "] = %" PRId64 " is outside the %" PRId64 " cache rows", b,
                           s, row, g.positions);
      }
      const float *c = cc + row * half, *sn = sc + row * half;
      for (int64_t h = 0; h < g.heads; h++) {
        int64_t off = g.is_3d ? (b * g.seq + s) * g.heads * g.head + h * g.head
                              : ((b * g.heads + h) * g.seq + s) * g.head;
        const float *xr = xs + off;
        float *yr = ys + off;
        for (int64_t i = 0; i < half; i++) {
          int64_t i1 = g.interleaved ? 2 * i : i, i2 = g.interleaved ? 2 * i + 1 : i + half;
          float x1 = xr[i1], x2 = xr[i2];
          yr[i1] = c[i] * x1 - sn[i] * x2;
          yr[i2] = sn[i] * x1 + c[i] * x2;
        }
        for (int64_t i = g.rot; i < g.head; i++) yr[i] = xr[i];
      }
    }
  return DRT_OK;
}
