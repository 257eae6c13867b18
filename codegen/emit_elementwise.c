/* CUDA emitters for the elementwise family: drt.Elementwise programs, the plain ONNX pointwise
 * ops (unary math, broadcasting arithmetic/comparison/logic for float and integer dtypes, Pow,
 * Where, Clip, Cast/CastLike, Sum/Mean/Max/Min, IsNaN/IsInf, Identity, Dropout) and the shared
 * epilogue renderer drt_cg_emit_ew_program (codegen/cg.h).
 *
 * Every node becomes ONE straight-line kernel (helpers in codegen/kernels/elementwise.cuh):
 *
 *   extern "C" __global__ void __launch_bounds__(256) drt_k..(drt_kargs a) {
 *     const __half *in0 = ..., *in1 = ...;  __half *out0 = ...;
 *     const float v2 = drt_ld(in2);                  <- scalar inputs, loaded once
 *     if (all 16-byte aligned) {                     <- vector path: N divisible by 8 halves /
 *       for (q = tid; q < N / 8; q += stride) {          4 floats; every input full-shape, scalar,
 *         float v0_[8]; drt_ld_vec(in0 + q * 8, v0_);    or broadcast contiguous / constant along
 *                                                        an innermost dim that 8 (4) divides
 *         for j: { v0 = v0_[j]; BODY; y0_[j] = y0; }
 *         drt_st_vec(out0 + q * 8, y0_); }
 *       return; }
 *     for (i = tid; i < N; i += stride) {            <- scalar path: grid-stride
 *       c2 = i % D2, c1 = (i / D2) % D1 ...          <- coordinates of the merged output dims
 *       v0 = drt_ld(in0 + i); v1 = drt_ld(in1 + c1); <- full shape: same index; broadcast:
 *       BODY; drt_st(out0 + i, y0); } }                  strides computed at codegen time
 *
 * Values are loaded into "compute" types: float for float32 (whatever the activation storage),
 * float16 and bfloat16; the native C type for double, integers and bool. Every input of an
 * element is read before any output of it is written, so outputs may alias same-shape inputs
 * (the memory planner's in-place rule). Semantics follow runtime/cpu/elementwise.c and
 * runtime/cpu/ew_exec.c op by op. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codegen/cg.h"
#include "ir/infer.h"

#define EK_THREADS 256
#define EK_MAX_BLOCKS 8192
#define EK_MAX_IN DRT_CUDA_MAX_ARGS
#define EK_MAX_OUT DRT_EW_MAX_OUTPUTS

/* ---- a growable string ------------------------------------------------------------------------ */
typedef struct sbuf {
  char *p;
  size_t len, cap;
  bool oom;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...) {
  if (b->oom) return;
  for (;;) {
    size_t room = b->cap - b->len;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? room : 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
      b->oom = true;
      return;
    }
    if (b->p && (size_t)n < room) {
      b->len += (size_t)n;
      return;
    }
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < b->len + (size_t)n + 1) cap *= 2;
    char *q = realloc(b->p, cap);
    if (!q) {
      b->oom = true;
      return;
    }
    b->p = q;
    b->cap = cap;
  }
}

static void sb_free(sbuf *b) {
  free(b->p);
  memset(b, 0, sizeof *b);
}

/* ---- dtype helpers ---------------------------------------------------------------------------- */
static bool is_floatlike(drt_dtype st) {
  return st == DRT_DTYPE_FLOAT32 || st == DRT_DTYPE_FLOAT16 || st == DRT_DTYPE_BFLOAT16;
}

/* The type a stored element is computed in. */
static const char *compute_type(const drt_cg *cg, drt_dtype st) {
  return is_floatlike(st) ? "float" : drt_cg_ctype(cg, st);
}

typedef enum cclass { CC_FLOAT, CC_DOUBLE, CC_SINT, CC_UINT, CC_BOOL, CC_OTHER } cclass;

static cclass class_of(drt_dtype st) {
  if (is_floatlike(st)) return CC_FLOAT;
  if (st == DRT_DTYPE_FLOAT64) return CC_DOUBLE;
  if (st == DRT_DTYPE_BOOL) return CC_BOOL;
  if (drt_dtype_is_signed_int(st)) return CC_SINT;
  if (drt_dtype_is_int(st)) return CC_UINT;
  return CC_OTHER;
}

/* A literal of compute class c with value v (float: rounded to float). */
static void lit_float(char *buf, size_t n, double v, bool dbl) {
  if (dbl) {
    if (isfinite(v)) {
      snprintf(buf, n, "%.17e", v);
    } else {
      uint64_t u;
      memcpy(&u, &v, 8);
      snprintf(buf, n, "__longlong_as_double(0x%016" PRIx64 "ll)", u);
    }
  } else {
    float f = (float)v;
    if (isfinite(f)) {
      snprintf(buf, n, "%.9ef", (double)f);
    } else {
      uint32_t u;
      memcpy(&u, &f, 4);
      snprintf(buf, n, "__uint_as_float(0x%08" PRIx32 "u)", u);
    }
  }
}

static void lit_int(char *buf, size_t n, int64_t v, bool is_unsigned, const char *ctype) {
  if (is_unsigned)
    snprintf(buf, n, "((%s)%" PRIu64 "ull)", ctype, (uint64_t)v);
  else if (v == INT64_MIN)
    snprintf(buf, n, "((%s)(-9223372036854775807ll - 1))", ctype);
  else
    snprintf(buf, n, "((%s)%" PRId64 "ll)", ctype, v);
}

/* ---- the kernel description ------------------------------------------------------------------- */
typedef struct ek {
  drt_shape shape; /* output shape */
  int nin, nout;
  drt_cuda_arg in_arg[EK_MAX_IN];
  drt_dtype in_st[EK_MAX_IN];
  const drt_value *in_inline[EK_MAX_IN]; /* small float32 constants read from the kernel text in fp32 */
  drt_shape in_shape[EK_MAX_IN];
  drt_cuda_arg out_arg[EK_MAX_OUT];
  drt_dtype out_st[EK_MAX_OUT];
  sbuf body; /* statements reading v<k> and assigning y<j> */
} ek;

static void ek_init(ek *k, const drt_shape *shape) {
  memset(k, 0, sizeof *k);
  k->shape = *shape;
}

static drt_status ek_add_in(ek *k, drt_cuda_arg arg, drt_dtype st, const drt_shape *shape) {
  if (k->nin >= EK_MAX_IN) return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "more than %d operands", EK_MAX_IN);
  k->in_arg[k->nin] = arg;
  k->in_st[k->nin] = st;
  k->in_shape[k->nin] = *shape;
  k->nin++;
  return DRT_OK;
}

/* Small float32 constants (frequency tables, per-channel scales) keep full precision when the
 * storage type is fp16/bf16: the program reads them from an fp32 array in its own text instead of
 * the rounded device copy. A timestep embedding's t * freq with freq rounded to bf16 is off by
 * radians at t ~ 1000. */
#define EK_INLINE_MAX 1024
#define EK_INLINE_MAX_OUT 65536

/* v read as if it had `shape` (same element count: a [C] bias read as [C, 1, 1]) */
static drt_status ek_add_value_as(drt_cg *cg, ek *k, const drt_value *v, const drt_shape *shape) {
  if (!v->has_shape) return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "value '%s' has no static shape", v->name);
  drt_dtype st = drt_cg_storage(cg, v);
  int64_t n = drt_shape_numel(&v->shape);
  if (drt_shape_numel(shape) != n) return DRT_ERROR(DRT_STATUS_INTERNAL, "value '%s' read with another size", v->name);
  bool inl = v->kind == DRT_VALUE_CONST && v->data && v->dtype == DRT_DTYPE_FLOAT32 && st != DRT_DTYPE_FLOAT32 &&
             n > 0 && n <= EK_INLINE_MAX;
  DRT_RETURN_IF_ERROR(ek_add_in(k, drt_cg_arg_value(v), inl ? DRT_DTYPE_FLOAT32 : st, shape));
  k->in_inline[k->nin - 1] = inl ? v : NULL;
  return DRT_OK;
}

static drt_status ek_add_value(drt_cg *cg, ek *k, const drt_value *v) { return ek_add_value_as(cg, k, v, &v->shape); }

static void ek_add_out(drt_cg *cg, ek *k, const drt_value *v) {
  k->out_arg[k->nout] = drt_cg_arg_value(v);
  k->out_st[k->nout] = drt_cg_storage(cg, v);
  k->nout++;
}

static bool same_arg(const drt_cuda_arg *a, const drt_cuda_arg *b) {
  return a->kind == b->kind && a->value == b->value && a->offset == b->offset && a->imm == b->imm;
}

/* Broadcast strides of `in` into `out` (numpy rules; 0 where broadcast). */
static bool bcast_strides(const drt_shape *in, const drt_shape *out, int64_t *st) {
  if (in->rank > out->rank) return false;
  int off = out->rank - in->rank;
  int64_t s = 1;
  for (int i = out->rank - 1; i >= 0; i--) {
    int j = i - off;
    if (j < 0) {
      st[i] = 0;
      continue;
    }
    if (in->dims[j] != out->dims[i] && in->dims[j] != 1) return false;
    st[i] = in->dims[j] == 1 && out->dims[i] != 1 ? 0 : s;
    s *= in->dims[j];
  }
  return true;
}

typedef enum in_kind { IN_FULL, IN_SCALAR, IN_BCAST } in_kind;

static drt_status ek_emit(drt_cg *cg, ek *k) {
  drt_status st = DRT_OK;
  sbuf t = {0};
  if (k->body.oom) {
    st = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "kernel body");
    goto done;
  }
  int64_t total = drt_shape_numel(&k->shape);
  if (total < 0) {
    st = DRT_ERROR(DRT_STATUS_UNSUPPORTED, "output shape overflows");
    goto done;
  }
  if (total == 0) goto done;
  /* inline constants only in small programs (the timestep path): elsewhere a mixed fp32/16-bit
     program would lose its 16-byte vector path; constants that are not finite stay in memory */
  for (int i = 0; i < k->nin; i++) {
    if (!k->in_inline[i]) continue;
    bool keep = total <= EK_INLINE_MAX_OUT;
    const float *cd = (const float *)k->in_inline[i]->data;
    for (int64_t e = 0; keep && e < drt_shape_numel(&k->in_inline[i]->shape); e++) keep = isfinite(cd[e]);
    if (!keep) {
      k->in_st[i] = drt_cg_storage(cg, k->in_inline[i]);
      k->in_inline[i] = NULL;
    }
  }
  /* slots: distinct input buffers, then outputs */
  int slot_of[EK_MAX_IN];
  drt_cuda_arg args[DRT_CUDA_MAX_ARGS];
  int nargs = 0;
  for (int i = 0; i < k->nin; i++) {
    slot_of[i] = -1;
    for (int j = 0; j < i; j++)
      if (same_arg(&k->in_arg[i], &k->in_arg[j]) && k->in_st[i] == k->in_st[j]) {
        slot_of[i] = slot_of[j];
        break;
      }
    if (slot_of[i] >= 0) continue;
    if (nargs >= DRT_CUDA_MAX_ARGS) {
      st = DRT_ERROR(DRT_STATUS_UNSUPPORTED, "more than %d distinct buffers", DRT_CUDA_MAX_ARGS);
      goto done;
    }
    slot_of[i] = nargs;
    args[nargs++] = k->in_arg[i];
  }
  int out_slot[EK_MAX_OUT];
  for (int j = 0; j < k->nout; j++) {
    if (nargs >= DRT_CUDA_MAX_ARGS) {
      st = DRT_ERROR(DRT_STATUS_UNSUPPORTED, "more than %d distinct buffers", DRT_CUDA_MAX_ARGS);
      goto done;
    }
    out_slot[j] = nargs;
    args[nargs++] = k->out_arg[j];
  }
  /* classify inputs and merge output dims (size-1 dims dropped, neighbours joined when every
     input is contiguous or broadcast across both) */
  in_kind kind[EK_MAX_IN];
  int64_t strides[EK_MAX_IN][DRT_MAX_RANK];
  int64_t mdims[DRT_MAX_RANK], mst[EK_MAX_IN][DRT_MAX_RANK];
  for (int i = 0; i < k->nin; i++) {
    int64_t n = drt_shape_numel(&k->in_shape[i]);
    char a[96], b[96];
    if (!bcast_strides(&k->in_shape[i], &k->shape, strides[i])) {
      st = DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "operand %d of shape %s does not broadcast into %s", i,
                     drt_shape_str(&k->in_shape[i], a, sizeof a), drt_shape_str(&k->shape, b, sizeof b));
      goto done;
    }
    kind[i] = n == 1 ? IN_SCALAR : n == total ? IN_FULL : IN_BCAST;
  }
  int r = 0;
  for (int d = 0; d < k->shape.rank; d++) {
    int64_t size = k->shape.dims[d];
    if (size == 1) continue;
    bool join = r > 0;
    for (int i = 0; join && i < k->nin; i++)
      if (kind[i] == IN_BCAST && mst[i][r - 1] != strides[i][d] * size) join = false;
    if (join) {
      mdims[r - 1] *= size;
      for (int i = 0; i < k->nin; i++) mst[i][r - 1] = strides[i][d];
    } else {
      mdims[r] = size;
      for (int i = 0; i < k->nin; i++) mst[i][r] = strides[i][d];
      r++;
    }
  }
  /* vector path: every non-scalar operand float-like; V = 16 bytes of the widest (8 halves, or 4
     elements when a float32 operand is among fp16/bf16 ones: 8-byte accesses for those);
     broadcast inputs contiguous (stride 1) or constant (stride 0) along an innermost merged dim
     that V divides, so each group of V outputs reads V contiguous aligned elements or one value */
  int esize = 0;
  bool vec = r >= 1;
  for (int i = 0; i < k->nin && vec; i++) {
    if (kind[i] == IN_SCALAR) continue;
    if (!is_floatlike(k->in_st[i])) vec = false;
    else if ((int)drt_dtype_size(k->in_st[i]) > esize) esize = (int)drt_dtype_size(k->in_st[i]);
  }
  for (int j = 0; j < k->nout && vec; j++) {
    if (!is_floatlike(k->out_st[j])) vec = false;
    else if ((int)drt_dtype_size(k->out_st[j]) > esize) esize = (int)drt_dtype_size(k->out_st[j]);
  }
  int V = esize ? 16 / esize : 0;
  if (!V || total % V != 0) vec = false;
  for (int i = 0; i < k->nin && vec; i++)
    if (kind[i] == IN_BCAST && ((mst[i][r - 1] != 0 && mst[i][r - 1] != 1) || mdims[r - 1] % V != 0)) vec = false;
  const char *I = total < ((int64_t)1 << 30) ? "int" : "long long";
  /* coordinates of the merged dims the broadcast inputs need */
  int dmin = r;
  bool need[DRT_MAX_RANK] = {false};
  for (int i = 0; i < k->nin; i++)
    if (kind[i] == IN_BCAST)
      for (int d = 0; d < r; d++)
        if (mst[i][d] != 0) {
          need[d] = true;
          if (d < dmin) dmin = d;
        }
  char *idx[EK_MAX_IN] = {NULL};
  for (int i = 0; i < k->nin; i++) {
    if (kind[i] != IN_BCAST) continue;
    sbuf e = {0};
    bool any = false;
    for (int d = 0; d < r; d++)
      if (mst[i][d] != 0) {
        if (mst[i][d] == 1)
          sb_printf(&e, "%sc%d", any ? " + " : "", d);
        else
          sb_printf(&e, "%sc%d * (%s)%" PRId64, any ? " + " : "", d, I, mst[i][d]);
        any = true;
      }
    if (!any) sb_printf(&e, "0");
    if (e.oom) {
      sb_free(&e);
      st = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "kernel text");
      goto done_idx;
    }
    idx[i] = e.p;
  }

  for (int i = 0; i < k->nin; i++) { /* inline constants: fp32 arrays ahead of the kernel */
    bool first = true;
    for (int j = 0; j < i; j++)
      if (slot_of[j] == slot_of[i]) first = false;
    if (!first || !k->in_inline[i]) continue;
    const float *cd = (const float *)k->in_inline[i]->data;
    int64_t cn = drt_shape_numel(&k->in_inline[i]->shape);
    sb_printf(&t, "__device__ __align__(16) const float @NAME@_c%d[%" PRId64 "] = {", slot_of[i], cn);
    for (int64_t e = 0; e < cn; e++) {
      sb_printf(&t, "%s%.9ef", e ? (e % 8 ? ", " : ",\n  ") : "", (double)cd[e]);
    }
    sb_printf(&t, "};\n");
  }
  sb_printf(&t, "extern \"C\" __global__ void __launch_bounds__(%d) @NAME@(drt_kargs a) {\n", EK_THREADS);
  for (int i = 0; i < k->nin; i++) {
    bool first = true;
    for (int j = 0; j < i; j++)
      if (slot_of[j] == slot_of[i]) first = false;
    if (first && k->in_inline[i])
      sb_printf(&t, "  const float *in%d = @NAME@_c%d;\n", slot_of[i], slot_of[i]);
    else if (first)
      sb_printf(&t, "  const %s *in%d = (const %s *)a.u[%d];\n", drt_cg_ctype(cg, k->in_st[i]), slot_of[i],
                drt_cg_ctype(cg, k->in_st[i]), slot_of[i]);
  }
  for (int j = 0; j < k->nout; j++)
    sb_printf(&t, "  %s *out%d = (%s *)a.u[%d];\n", drt_cg_ctype(cg, k->out_st[j]), j, drt_cg_ctype(cg, k->out_st[j]),
              out_slot[j]);
  for (int i = 0; i < k->nin; i++)
    if (kind[i] == IN_SCALAR) {
      if (is_floatlike(k->in_st[i]))
        sb_printf(&t, "  const float v%d = drt_ld(in%d);\n", i, slot_of[i]);
      else
        sb_printf(&t, "  const %s v%d = in%d[0];\n", compute_type(cg, k->in_st[i]), i, slot_of[i]);
    }
  for (int pass = vec ? 0 : 1; pass < 2; pass++) {
    bool vp = pass == 0; /* vector pass */
    const char *ind = vp ? "      " : "    ", *iv = vp ? "i0" : "i";
    if (vp) {
      sb_printf(&t, "  if (((0ull");
      for (int i = 0; i < k->nin; i++)
        if (kind[i] == IN_FULL || (kind[i] == IN_BCAST && mst[i][r - 1] == 1)) sb_printf(&t, " | a.u[%d]", slot_of[i]);
      for (int j = 0; j < k->nout; j++) sb_printf(&t, " | a.u[%d]", out_slot[j]);
      sb_printf(&t, ") & 15ull) == 0) {\n");
      sb_printf(&t,
                "    for (%s q = (%s)blockIdx.x * (%s)blockDim.x + (%s)threadIdx.x; q < (%s)%" PRId64
                "; q += (%s)gridDim.x * (%s)blockDim.x) {\n",
                I, I, I, I, I, total / V, I, I);
      sb_printf(&t, "      const %s i0 = q * (%s)%d;\n", I, I, V);
    } else {
      sb_printf(&t,
                "  for (%s i = (%s)blockIdx.x * (%s)blockDim.x + (%s)threadIdx.x; i < (%s)%" PRId64
                "; i += (%s)gridDim.x * (%s)blockDim.x) {\n",
                I, I, I, I, I, total, I, I);
    }
    if (dmin < r) {
      sb_printf(&t, "%s%s t_ = %s;\n", ind, I, iv);
      for (int d = r - 1; d >= dmin; d--) {
        if (need[d]) {
          if (d == 0)
            sb_printf(&t, "%sconst %s c%d = t_;\n", ind, I, d);
          else
            sb_printf(&t, "%sconst %s c%d = t_ %% (%s)%" PRId64 ";\n", ind, I, d, I, mdims[d]);
        }
        if (d > dmin) sb_printf(&t, "%st_ /= (%s)%" PRId64 ";\n", ind, I, mdims[d]);
      }
      sb_printf(&t, "%s(void)t_;\n", ind);
    }
    if (vp) {
      for (int i = 0; i < k->nin; i++) {
        if (kind[i] == IN_FULL)
          sb_printf(&t, "      float v%d_[%d];\n      drt_ld_vecn<%d>(in%d + i0, v%d_);\n", i, V, V, slot_of[i], i);
        else if (kind[i] == IN_BCAST && mst[i][r - 1] == 1)
          sb_printf(&t, "      float v%d_[%d];\n      drt_ld_vecn<%d>(in%d + (%s), v%d_);\n", i, V, V, slot_of[i],
                    idx[i], i);
        else if (kind[i] == IN_BCAST)
          sb_printf(&t, "      const float v%d = drt_ld(in%d + (%s));\n", i, slot_of[i], idx[i]);
      }
      for (int j = 0; j < k->nout; j++) sb_printf(&t, "      float y%d_[%d];\n", j, V);
      sb_printf(&t, "#pragma unroll\n      for (int j_ = 0; j_ < %d; j_++) {\n", V);
      for (int i = 0; i < k->nin; i++)
        if (kind[i] == IN_FULL || (kind[i] == IN_BCAST && mst[i][r - 1] == 1))
          sb_printf(&t, "        const float v%d = v%d_[j_];\n", i, i);
      for (int j = 0; j < k->nout; j++) sb_printf(&t, "        float y%d = 0.0f;\n", j);
      sb_printf(&t, "        {\n%s        }\n", k->body.p ? k->body.p : "");
      for (int j = 0; j < k->nout; j++) sb_printf(&t, "        y%d_[j_] = y%d;\n", j, j);
      sb_printf(&t, "      }\n");
      for (int j = 0; j < k->nout; j++) sb_printf(&t, "      drt_st_vecn<%d>(out%d + i0, y%d_);\n", V, j, j);
      sb_printf(&t, "    }\n    return;\n  }\n");
      continue;
    }
    for (int i = 0; i < k->nin; i++) {
      if (kind[i] == IN_SCALAR) continue;
      const char *e = kind[i] == IN_FULL ? "i" : idx[i];
      if (is_floatlike(k->in_st[i]))
        sb_printf(&t, "    const float v%d = drt_ld(in%d + (%s));\n", i, slot_of[i], e);
      else
        sb_printf(&t, "    const %s v%d = in%d[%s];\n", compute_type(cg, k->in_st[i]), i, slot_of[i], e);
    }
    for (int j = 0; j < k->nout; j++) sb_printf(&t, "    %s y%d = 0;\n", compute_type(cg, k->out_st[j]), j);
    sb_printf(&t, "    {\n%s    }\n", k->body.p ? k->body.p : "");
    for (int j = 0; j < k->nout; j++) {
      if (is_floatlike(k->out_st[j]))
        sb_printf(&t, "    drt_st(out%d + i, y%d);\n", j, j);
      else
        sb_printf(&t, "    out%d[i] = (%s)y%d;\n", j, drt_cg_ctype(cg, k->out_st[j]), j);
    }
  }
  sb_printf(&t, "  }\n}");
  if (t.oom) {
    st = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "kernel text");
    goto done_idx;
  }
  int32_t kid;
  st = drt_cg_kernel(cg, EK_THREADS, &kid, "%s", t.p);
  if (st) goto done_idx;
  uint32_t grid[3] = {drt_cg_blocks(vec ? total / V : total, EK_THREADS, EK_MAX_BLOCKS), 1, 1};
  uint32_t block[3] = {EK_THREADS, 1, 1};
  st = drt_cg_launch(cg, kid, grid, block, 0, args, nargs);
done_idx:
  for (int i = 0; i < k->nin; i++) free(idx[i]);
done:
  sb_free(&t);
  sb_free(&k->body);
  return st;
}

/* ---- drt.Elementwise programs ------------------------------------------------------------------ */
static const char *ew_fn(drt_ew_op op) {
  switch (op) {
    case DRT_EW_NEG: return "drt_u_neg";
    case DRT_EW_ABS: return "drt_u_abs";
    case DRT_EW_SQRT: return "drt_u_sqrt";
    case DRT_EW_RECIP: return "drt_u_recip";
    case DRT_EW_EXP: return "drt_u_exp";
    case DRT_EW_LOG: return "drt_u_log";
    case DRT_EW_ERF: return "drt_u_erf";
    case DRT_EW_TANH: return "drt_u_tanh";
    case DRT_EW_SIGMOID: return "drt_u_sigmoid";
    case DRT_EW_RELU: return "drt_u_relu";
    case DRT_EW_SIN: return "drt_u_sin";
    case DRT_EW_COS: return "drt_u_cos";
    case DRT_EW_TAN: return "drt_u_tan";
    case DRT_EW_ASIN: return "drt_u_asin";
    case DRT_EW_ACOS: return "drt_u_acos";
    case DRT_EW_ATAN: return "drt_u_atan";
    case DRT_EW_SINH: return "drt_u_sinh";
    case DRT_EW_COSH: return "drt_u_cosh";
    case DRT_EW_ASINH: return "drt_u_asinh";
    case DRT_EW_ACOSH: return "drt_u_acosh";
    case DRT_EW_ATANH: return "drt_u_atanh";
    case DRT_EW_SWISH: return "drt_u_swish";
    case DRT_EW_THRESHOLDED_RELU: return "drt_u_thresholded_relu";
    case DRT_EW_SHRINK: return "drt_u_shrink";
    case DRT_EW_FLOOR: return "drt_u_floor";
    case DRT_EW_CEIL: return "drt_u_ceil";
    case DRT_EW_ROUND: return "drt_u_round";
    case DRT_EW_SIGN: return "drt_u_sign";
    case DRT_EW_GELU: return "drt_u_gelu";
    case DRT_EW_GELU_TANH: return "drt_u_gelu_tanh";
    case DRT_EW_SOFTPLUS: return "drt_u_softplus";
    case DRT_EW_SOFTSIGN: return "drt_u_softsign";
    case DRT_EW_MISH: return "drt_u_mish";
    case DRT_EW_HARD_SWISH: return "drt_u_hard_swish";
    case DRT_EW_NOT: return "drt_u_not";
    case DRT_EW_SILU: return "drt_u_silu";
    case DRT_EW_LEAKY_RELU: return "drt_u_leaky_relu";
    case DRT_EW_ELU: return "drt_u_elu";
    case DRT_EW_CELU: return "drt_u_celu";
    case DRT_EW_SELU: return "drt_u_selu";
    case DRT_EW_HARD_SIGMOID: return "drt_u_hard_sigmoid";
    case DRT_EW_POW: return "drt_ew_pow";
    case DRT_EW_MAX: return "drt_b_max";
    case DRT_EW_MIN: return "drt_b_min";
    case DRT_EW_PRELU: return "drt_b_prelu";
    default: return NULL;
  }
}

static const char *ew_infix(drt_ew_op op) {
  switch (op) {
    case DRT_EW_ADD: return "+";
    case DRT_EW_SUB: return "-";
    case DRT_EW_MUL: return "*";
    case DRT_EW_DIV: return "/";
    case DRT_EW_EQ: return "==";
    case DRT_EW_LT: return "<";
    case DRT_EW_LE: return "<=";
    case DRT_EW_GT: return ">";
    case DRT_EW_GE: return ">=";
    default: return NULL;
  }
}

/* Renders program p as statements: float registers r<k>, inputs v<input_base + k>, outputs
 * y<j>. add0 >= 0: loads of program input 0 read v<input_base> + v<add0> (a bias the GEMM did
 * not add). */
static drt_status ew_body(const drt_ew_program *p, int input_map_base, int add0, sbuf *b) {
  if (p->num_regs > 0) {
    sb_printf(b, "      float r0 = 0.0f");
    for (int k = 1; k < p->num_regs; k++) sb_printf(b, ", r%d = 0.0f", k);
    sb_printf(b, ";\n");
  }
  char c1[64], c2[64];
  for (int k = 0; k < p->num_insns; k++) {
    const drt_ew_insn *x = &p->insns[k];
    drt_ew_op op = (drt_ew_op)x->op;
    const char *fn = ew_fn(op), *inf = ew_infix(op);
    switch (op) {
      case DRT_EW_LOAD:
        if (x->a == 0 && add0 >= 0)
          sb_printf(b, "      r%d = v%d + v%d;\n", x->d, input_map_base, add0);
        else
          sb_printf(b, "      r%d = v%d;\n", x->d, x->a + input_map_base);
        continue;
      case DRT_EW_CONST:
        lit_float(c1, sizeof c1, p->consts[x->a], false);
        sb_printf(b, "      r%d = %s;\n", x->d, c1);
        continue;
      case DRT_EW_STORE: sb_printf(b, "      y%d = r%d;\n", x->d, x->a); continue;
      case DRT_EW_WHERE: sb_printf(b, "      r%d = r%d != 0.0f ? r%d : r%d;\n", x->d, x->a, x->b, x->c); continue;
      case DRT_EW_CLIP:
        sb_printf(b, "      r%d = r%d;\n", x->d, x->a);
        if (x->b >= 0) sb_printf(b, "      r%d = r%d < r%d ? r%d : r%d;\n", x->d, x->d, x->b, x->b, x->d);
        if (x->c >= 0) sb_printf(b, "      r%d = r%d > r%d ? r%d : r%d;\n", x->d, x->d, x->c, x->c, x->d);
        continue;
      case DRT_EW_AND:
        sb_printf(b, "      r%d = ((r%d != 0.0f) & (r%d != 0.0f)) ? 1.0f : 0.0f;\n", x->d, x->a, x->b);
        continue;
      case DRT_EW_OR:
        sb_printf(b, "      r%d = ((r%d != 0.0f) | (r%d != 0.0f)) ? 1.0f : 0.0f;\n", x->d, x->a, x->b);
        continue;
      case DRT_EW_XOR:
        sb_printf(b, "      r%d = ((r%d != 0.0f) ^ (r%d != 0.0f)) ? 1.0f : 0.0f;\n", x->d, x->a, x->b);
        continue;
      default: break;
    }
    drt_ew_form form = drt_ew_op_form(op);
    if (inf && form == DRT_EW_FORM_BINARY) {
      if (op >= DRT_EW_EQ)
        sb_printf(b, "      r%d = (r%d %s r%d) ? 1.0f : 0.0f;\n", x->d, x->a, inf, x->b);
      else
        sb_printf(b, "      r%d = r%d %s r%d;\n", x->d, x->a, inf, x->b);
    } else if (fn && form == DRT_EW_FORM_BINARY) {
      sb_printf(b, "      r%d = %s(r%d, r%d);\n", x->d, fn, x->a, x->b);
    } else if (fn && form == DRT_EW_FORM_UNARY) {
      sb_printf(b, "      r%d = %s(r%d);\n", x->d, fn, x->a);
    } else if (fn && form == DRT_EW_FORM_PARAM) {
      lit_float(c1, sizeof c1, p->consts[x->b], false);
      if (x->c >= 0) {
        lit_float(c2, sizeof c2, p->consts[x->c], false);
        sb_printf(b, "      r%d = %s(r%d, %s, %s);\n", x->d, fn, x->a, c1, c2);
      } else {
        sb_printf(b, "      r%d = %s(r%d, %s);\n", x->d, fn, x->a, c1);
      }
    } else {
      return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "program instruction %d (%s) has no CUDA form", k, drt_ew_op_name(op));
    }
  }
  return DRT_OK;
}

drt_status drt_cg_emit_ew_program(drt_cg *cg, const drt_node *n, const drt_ew_program *p, drt_cuda_arg in0,
                                  drt_dtype in0_dtype, int first_extra, const drt_value *out) {
  return drt_cg_emit_ew_program_bias(cg, n, p, in0, in0_dtype, first_extra, NULL, out);
}

drt_status drt_cg_emit_ew_program_bias(drt_cg *cg, const drt_node *n, const drt_ew_program *p, drt_cuda_arg in0,
                                       drt_dtype in0_dtype, int first_extra, const drt_value *bias,
                                       const drt_value *out) {
  if (p->num_outputs != 1)
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "epilogue program with %d outputs", p->num_outputs);
  if (!out->has_shape) return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "output has no static shape");
  ek k;
  ek_init(&k, &out->shape);
  int extra = 0;
  for (int i = 0; i < p->num_inputs; i++) {
    if (i == 0 && in0.kind != DRT_CUDA_ARG_NONE) {
      DRT_RETURN_IF_ERROR(ek_add_in(&k, in0, in0_dtype, &out->shape));
      continue;
    }
    int ni = first_extra + extra++;
    const drt_value *v = drt_node_input(n, ni);
    if (!v) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "program input %d (node input %d) is missing", i, ni);
    DRT_RETURN_IF_ERROR(ek_add_value(cg, &k, v));
  }
  int add0 = -1;
  if (bias) {
    /* bias[C] along axis 1 of out [N, C, ...]: read as [C, 1, ..., 1] */
    drt_shape bs = {0};
    bs.rank = out->shape.rank - 1;
    if (in0.kind == DRT_CUDA_ARG_NONE || bs.rank < 1 || !bias->has_shape || bias->shape.rank != 1 ||
        bias->shape.dims[0] != out->shape.dims[1])
      return DRT_ERROR(DRT_STATUS_INTERNAL, "epilogue bias does not match the output's channels");
    bs.dims[0] = bias->shape.dims[0];
    for (int d = 1; d < bs.rank; d++) bs.dims[d] = 1;
    add0 = k.nin;
    DRT_RETURN_IF_ERROR(ek_add_value_as(cg, &k, bias, &bs));
  }
  ek_add_out(cg, &k, out);
  drt_status st = ew_body(p, 0, add0, &k.body);
  if (st) {
    sb_free(&k.body);
    return st;
  }
  return ek_emit(cg, &k);
}

static drt_status emit_fused_elementwise(drt_cg *cg, const drt_node *n) {
  drt_ew_program p;
  DRT_RETURN_IF_ERROR(drt_ew_program_decode(n, n->num_inputs, n->num_outputs, &p));
  const drt_value *o0 = n->outputs[0];
  if (!o0->has_shape) return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "output 0 has no static shape");
  for (int j = 0; j < n->num_outputs; j++)
    if (n->outputs[j]->dtype != DRT_DTYPE_FLOAT32 || !n->outputs[j]->has_shape ||
        !drt_shape_equal(&n->outputs[j]->shape, &o0->shape))
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "output %d must be float32 with the shape of output 0", j);
  ek k;
  ek_init(&k, &o0->shape);
  for (int i = 0; i < n->num_inputs; i++) {
    const drt_value *v = n->inputs[i];
    if (!v) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input %d is missing", i);
    if (v->dtype != DRT_DTYPE_FLOAT32)
      return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "input %d has dtype %s, expected float32", i, drt_dtype_name(v->dtype));
    DRT_RETURN_IF_ERROR(ek_add_value(cg, &k, v));
  }
  for (int j = 0; j < n->num_outputs; j++) ek_add_out(cg, &k, n->outputs[j]);
  drt_status st = ew_body(&p, 0, -1, &k.body);
  if (st) {
    sb_free(&k.body);
    return st;
  }
  return ek_emit(cg, &k);
}

/* ---- ONNX ops ----------------------------------------------------------------------------------- */
static drt_status unsupported_dtype(const char *what, drt_dtype dt) {
  return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "%s dtype %s is not supported", what, drt_dtype_name(dt));
}

/* A kernel over node inputs [0, nin) (NULL inputs skipped by the caller) and outputs [0, nout). */
static drt_status ek_from_node(drt_cg *cg, const drt_node *n, int nin, int nout, ek *k) {
  const drt_value *o0 = n->outputs[0];
  if (!o0->has_shape) return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "output 0 has no static shape");
  ek_init(k, &o0->shape);
  for (int i = 0; i < nin; i++) {
    const drt_value *v = drt_node_input(n, i);
    if (!v) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input %d is missing", i);
    DRT_RETURN_IF_ERROR(ek_add_value(cg, k, v));
  }
  for (int j = 0; j < nout; j++) ek_add_out(cg, k, n->outputs[j]);
  return DRT_OK;
}

static drt_status emit_copy(drt_cg *cg, const drt_node *n, const drt_value *src, const drt_value *dst) {
  (void)n;
  if (drt_cg_storage(cg, src) != drt_cg_storage(cg, dst))
    return DRT_ERROR(DRT_STATUS_INTERNAL, "copy between storage dtypes");
  int64_t cnt = drt_shape_numel(&dst->shape);
  if (cnt <= 0) return DRT_OK;
  return drt_cg_copy(cg, drt_cg_arg_value(dst), drt_cg_arg_value(src),
                     (uint64_t)cnt * drt_dtype_size(drt_cg_storage(cg, dst)));
}

/* Unary ops: name of the float/double function and its parameters. */
typedef struct unary_desc {
  drt_op op;
  const char *fn;
  int nparams;              /* alpha [, beta | gamma] */
  const char *p1, *p2;      /* attribute names */
  double d1, d2;            /* defaults */
} unary_desc;

static const unary_desc k_unary[] = {
    {DRT_OP_ABS, "drt_u_abs", 0, NULL, NULL, 0, 0},
    {DRT_OP_NEG, "drt_u_neg", 0, NULL, NULL, 0, 0},
    {DRT_OP_SQRT, "drt_u_sqrt", 0, NULL, NULL, 0, 0},
    {DRT_OP_RECIPROCAL, "drt_u_recip", 0, NULL, NULL, 0, 0},
    {DRT_OP_EXP, "drt_u_exp", 0, NULL, NULL, 0, 0},
    {DRT_OP_LOG, "drt_u_log", 0, NULL, NULL, 0, 0},
    {DRT_OP_ERF, "drt_u_erf", 0, NULL, NULL, 0, 0},
    {DRT_OP_TANH, "drt_u_tanh", 0, NULL, NULL, 0, 0},
    {DRT_OP_SIGMOID, "drt_u_sigmoid", 0, NULL, NULL, 0, 0},
    {DRT_OP_RELU, "drt_u_relu", 0, NULL, NULL, 0, 0},
    {DRT_OP_LEAKY_RELU, "drt_u_leaky_relu", 1, "alpha", NULL, 0.01, 0},
    {DRT_OP_ELU, "drt_u_elu", 1, "alpha", NULL, 1.0, 0},
    {DRT_OP_SELU, "drt_u_selu", 2, "alpha", "gamma", 1.67326319217681884765625, 1.05070102214813232421875},
    {DRT_OP_CELU, "drt_u_celu", 1, "alpha", NULL, 1.0, 0},
    {DRT_OP_SIN, "drt_u_sin", 0, NULL, NULL, 0, 0},
    {DRT_OP_COS, "drt_u_cos", 0, NULL, NULL, 0, 0},
    {DRT_OP_TAN, "drt_u_tan", 0, NULL, NULL, 0, 0},
    {DRT_OP_ASIN, "drt_u_asin", 0, NULL, NULL, 0, 0},
    {DRT_OP_ACOS, "drt_u_acos", 0, NULL, NULL, 0, 0},
    {DRT_OP_ATAN, "drt_u_atan", 0, NULL, NULL, 0, 0},
    {DRT_OP_SINH, "drt_u_sinh", 0, NULL, NULL, 0, 0},
    {DRT_OP_COSH, "drt_u_cosh", 0, NULL, NULL, 0, 0},
    {DRT_OP_ASINH, "drt_u_asinh", 0, NULL, NULL, 0, 0},
    {DRT_OP_ACOSH, "drt_u_acosh", 0, NULL, NULL, 0, 0},
    {DRT_OP_ATANH, "drt_u_atanh", 0, NULL, NULL, 0, 0},
    {DRT_OP_FLOOR, "drt_u_floor", 0, NULL, NULL, 0, 0},
    {DRT_OP_CEIL, "drt_u_ceil", 0, NULL, NULL, 0, 0},
    {DRT_OP_ROUND, "drt_u_round", 0, NULL, NULL, 0, 0},
    {DRT_OP_SIGN, "drt_u_sign", 0, NULL, NULL, 0, 0},
    {DRT_OP_GELU, "drt_u_gelu", 0, NULL, NULL, 0, 0},
    {DRT_OP_HARD_SIGMOID, "drt_u_hard_sigmoid", 2, "alpha", "beta", 0.2, 0.5},
    {DRT_OP_HARD_SWISH, "drt_u_hard_swish", 0, NULL, NULL, 0, 0},
    {DRT_OP_MISH, "drt_u_mish", 0, NULL, NULL, 0, 0},
    {DRT_OP_SOFTPLUS, "drt_u_softplus", 0, NULL, NULL, 0, 0},
    {DRT_OP_SOFTSIGN, "drt_u_softsign", 0, NULL, NULL, 0, 0},
    {DRT_OP_SWISH, "drt_u_swish", 1, "alpha", NULL, 1.0, 0},
    {DRT_OP_THRESHOLDED_RELU, "drt_u_thresholded_relu", 1, "alpha", NULL, 1.0, 0},
    {DRT_OP_SHRINK, "drt_u_shrink", 2, "bias", "lambd", 0.0, 0.5},
};

static drt_status emit_unary(drt_cg *cg, const drt_node *n) {
  const unary_desc *u = NULL;
  for (size_t i = 0; i < sizeof k_unary / sizeof k_unary[0]; i++)
    if (k_unary[i].op == n->op) u = &k_unary[i];
  if (!u) return DRT_ERROR(DRT_STATUS_INTERNAL, "no unary description");
  const drt_value *x = n->inputs[0];
  drt_dtype st = drt_cg_storage(cg, x);
  cclass c = class_of(st);
  ek k;
  DRT_RETURN_IF_ERROR(ek_from_node(cg, n, 1, 1, &k));
  if (c == CC_FLOAT || c == CC_DOUBLE) {
    bool dbl = c == CC_DOUBLE;
    const char *fn = u->fn;
    if (n->op == DRT_OP_GELU && strcmp(drt_node_attr_string(n, "approximate", "none"), "tanh") == 0)
      fn = "drt_u_gelu_tanh";
    char a1[64], a2[64];
    if (u->nparams == 0) {
      sb_printf(&k.body, "      y0 = %s(v0);\n", fn);
    } else {
      lit_float(a1, sizeof a1, (double)drt_node_attr_float(n, u->p1, (float)u->d1), dbl);
      if (u->nparams == 1) {
        sb_printf(&k.body, "      y0 = %s(v0, %s);\n", fn, a1);
      } else {
        lit_float(a2, sizeof a2, (double)drt_node_attr_float(n, u->p2, (float)u->d2), dbl);
        sb_printf(&k.body, "      y0 = %s(v0, %s, %s);\n", fn, a1, a2);
      }
    }
    return ek_emit(cg, &k);
  }
  if (c == CC_SINT || c == CC_UINT) {
    const char *fn = n->op == DRT_OP_ABS    ? "drt_i_abs"
                     : n->op == DRT_OP_NEG  ? "drt_i_neg"
                     : n->op == DRT_OP_SIGN ? "drt_i_sign"
                     : n->op == DRT_OP_RELU ? "drt_i_relu"
                                            : NULL;
    if (fn && !(c == CC_UINT && n->op == DRT_OP_NEG)) {
      sb_printf(&k.body, "      y0 = %s(v0);\n", fn);
      return ek_emit(cg, &k);
    }
  }
  sb_free(&k.body);
  return unsupported_dtype("input", x->dtype);
}

static drt_status emit_not(drt_cg *cg, const drt_node *n) {
  if (n->inputs[0]->dtype != DRT_DTYPE_BOOL) return unsupported_dtype("input", n->inputs[0]->dtype);
  ek k;
  DRT_RETURN_IF_ERROR(ek_from_node(cg, n, 1, 1, &k));
  sb_printf(&k.body, "      y0 = v0 == 0;\n");
  return ek_emit(cg, &k);
}

static drt_status emit_classify(drt_cg *cg, const drt_node *n) {
  cclass c = class_of(drt_cg_storage(cg, n->inputs[0]));
  if (c != CC_FLOAT && c != CC_DOUBLE) return unsupported_dtype("input", n->inputs[0]->dtype);
  ek k;
  DRT_RETURN_IF_ERROR(ek_from_node(cg, n, 1, 1, &k));
  const char *ty = c == CC_DOUBLE ? "double" : "float";
  if (n->op == DRT_OP_ISNAN) {
    sb_printf(&k.body, "      y0 = v0 != v0;\n");
  } else {
    bool pos = drt_node_attr_int(n, "detect_positive", 1) != 0, neg = drt_node_attr_int(n, "detect_negative", 1) != 0;
    const char *inf = c == CC_DOUBLE ? "__longlong_as_double(0x7ff0000000000000ll)" : "__uint_as_float(0x7f800000u)";
    sb_printf(&k.body, "      const %s inf_ = %s;\n      y0 = (%s && v0 == inf_) || (%s && v0 == -inf_);\n", ty, inf,
              pos ? "true" : "false", neg ? "true" : "false");
  }
  return ek_emit(cg, &k);
}

/* Binary ops with broadcasting. */
static drt_status emit_binary(drt_cg *cg, const drt_node *n) {
  const drt_value *a = n->inputs[0];
  drt_dtype st = drt_cg_storage(cg, a);
  cclass c = class_of(st);
  const char *ty = compute_type(cg, st);
  const char *expr = NULL; /* printf with the compute type where %s appears */
  bool is_int = c == CC_SINT || c == CC_UINT;
  bool is_fp = c == CC_FLOAT || c == CC_DOUBLE;
  bool fmod_ = drt_node_attr_int(n, "fmod", 0) != 0;
  switch (n->op) {
    case DRT_OP_ADD: expr = is_fp ? "v0 + v1" : is_int ? "drt_i_add(v0, v1)" : NULL; break;
    case DRT_OP_SUB: expr = is_fp ? "v0 - v1" : is_int ? "drt_i_sub(v0, v1)" : NULL; break;
    case DRT_OP_MUL: expr = is_fp ? "v0 * v1" : is_int ? "drt_i_mul(v0, v1)" : NULL; break;
    case DRT_OP_DIV: expr = is_fp ? "v0 / v1" : is_int ? "drt_i_div(v0, v1)" : NULL; break;
    case DRT_OP_MOD:
      expr = is_fp ? (fmod_ ? "drt_b_fmod(v0, v1)" : "drt_b_mod(v0, v1)")
             : is_int ? (fmod_ ? "drt_i_fmod(v0, v1)" : "drt_i_mod(v0, v1)")
                      : NULL;
      break;
    case DRT_OP_PRELU: expr = is_fp ? "drt_b_prelu(v0, v1)" : is_int ? "drt_i_prelu(v0, v1)" : NULL; break;
    case DRT_OP_EQUAL: expr = c != CC_OTHER ? "v0 == v1" : NULL; break;
    case DRT_OP_LESS: expr = c != CC_OTHER ? "v0 < v1" : NULL; break;
    case DRT_OP_LESS_OR_EQUAL: expr = c != CC_OTHER ? "v0 <= v1" : NULL; break;
    case DRT_OP_GREATER: expr = c != CC_OTHER ? "v0 > v1" : NULL; break;
    case DRT_OP_GREATER_OR_EQUAL: expr = c != CC_OTHER ? "v0 >= v1" : NULL; break;
    case DRT_OP_AND: expr = c == CC_BOOL ? "(v0 != 0) & (v1 != 0)" : NULL; break;
    case DRT_OP_OR: expr = c == CC_BOOL ? "(v0 != 0) | (v1 != 0)" : NULL; break;
    case DRT_OP_XOR: expr = c == CC_BOOL ? "(v0 != 0) ^ (v1 != 0)" : NULL; break;
    default: break;
  }
  if (!expr) return unsupported_dtype("input", a->dtype);
  (void)ty;
  ek k;
  DRT_RETURN_IF_ERROR(ek_from_node(cg, n, 2, 1, &k));
  if (n->op == DRT_OP_PRELU && n->opset < 7 && k.in_shape[1].rank == 1 && k.in_shape[0].rank >= 2 &&
      k.in_shape[1].dims[0] == k.in_shape[0].dims[1]) { /* legacy per-channel slope: view as [C, 1, ...] */
    drt_shape *s = &k.in_shape[1];
    s->rank = k.in_shape[0].rank - 1;
    for (int i = 1; i < s->rank; i++) s->dims[i] = 1;
  }
  sb_printf(&k.body, "      y0 = %s;\n", expr);
  return ek_emit(cg, &k);
}

static drt_status emit_pow(drt_cg *cg, const drt_node *n) {
  drt_dtype bst = drt_cg_storage(cg, n->inputs[0]), est = drt_cg_storage(cg, n->inputs[1]);
  cclass bc = class_of(bst), ec = class_of(est);
  if (ec == CC_OTHER) return unsupported_dtype("exponent", n->inputs[1]->dtype);
  ek k;
  const char *body;
  bool int_exp = ec == CC_SINT || ec == CC_UINT || ec == CC_BOOL;
  if (bc == CC_FLOAT)
    body = "      y0 = drt_b_pow(v0, (float)(double)v1);\n";
  else if (bc == CC_DOUBLE)
    body = "      y0 = drt_b_pow(v0, (double)v1);\n";
  else if (bst == DRT_DTYPE_INT32 || bst == DRT_DTYPE_INT64)
    body = int_exp ? "      y0 = drt_i_pow((long long)v0, (long long)v1);\n"
                   : "      y0 = drt_d2i64(pow((double)v0, (double)v1));\n";
  else
    return unsupported_dtype("input", n->inputs[0]->dtype);
  DRT_RETURN_IF_ERROR(ek_from_node(cg, n, 2, 1, &k));
  sb_printf(&k.body, "%s", body);
  return ek_emit(cg, &k);
}

static drt_status emit_variadic(drt_cg *cg, const drt_node *n) {
  const drt_value *a = n->inputs[0];
  drt_dtype st = drt_cg_storage(cg, a);
  cclass c = class_of(st);
  bool is_fp = c == CC_FLOAT || c == CC_DOUBLE, is_int = c == CC_SINT || c == CC_UINT;
  const char *fn = NULL;
  bool infix = false;
  switch (n->op) {
    case DRT_OP_SUM:
    case DRT_OP_MEAN:
      if (is_fp) fn = "+", infix = true;
      else if (is_int && n->op == DRT_OP_SUM) fn = "drt_i_add";
      break;
    case DRT_OP_MAX: fn = is_fp ? "drt_b_max" : is_int ? "drt_i_max" : NULL; break;
    case DRT_OP_MIN: fn = is_fp ? "drt_b_min" : is_int ? "drt_i_min" : NULL; break;
    default: break;
  }
  if (!fn) return unsupported_dtype("input", a->dtype);
  for (int i = 1; i < n->num_inputs; i++)
    if (!n->inputs[i]) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input %d is missing", i);
  ek k;
  DRT_RETURN_IF_ERROR(ek_from_node(cg, n, n->num_inputs, 1, &k));
  const char *ty = compute_type(cg, st);
  sb_printf(&k.body, "      %s acc_ = v0;\n", ty);
  for (int i = 1; i < n->num_inputs; i++) {
    if (infix)
      sb_printf(&k.body, "      acc_ = acc_ %s v%d;\n", fn, i);
    else
      sb_printf(&k.body, "      acc_ = %s(acc_, v%d);\n", fn, i);
  }
  if (n->op == DRT_OP_MEAN)
    sb_printf(&k.body, "      acc_ = acc_ / (%s)%d;\n", ty, n->num_inputs);
  sb_printf(&k.body, "      y0 = acc_;\n");
  return ek_emit(cg, &k);
}

static drt_status emit_where(drt_cg *cg, const drt_node *n) {
  if (n->inputs[0]->dtype != DRT_DTYPE_BOOL) return unsupported_dtype("condition", n->inputs[0]->dtype);
  if (class_of(drt_cg_storage(cg, n->inputs[1])) == CC_OTHER) return unsupported_dtype("input", n->inputs[1]->dtype);
  ek k;
  DRT_RETURN_IF_ERROR(ek_from_node(cg, n, 3, 1, &k));
  sb_printf(&k.body, "      y0 = v0 ? v1 : v2;\n");
  return ek_emit(cg, &k);
}

/* Renders value v (double) converted to dtype dt the way drt_convert does, as a literal of
 * dt's compute type. */
static void lit_of_dtype(const drt_cg *cg, drt_dtype st, double v, char *buf, size_t n) {
  cclass c = class_of(st);
  if (c == CC_FLOAT || c == CC_DOUBLE) {
    lit_float(buf, n, v, c == CC_DOUBLE);
    return;
  }
  unsigned char raw[8] = {0};
  drt_convert(st, raw, DRT_DTYPE_FLOAT64, &v, 1);
  int64_t iv = drt_load_i64(st, raw, 0);
  lit_int(buf, n, iv, c == CC_UINT || c == CC_BOOL, drt_cg_ctype(cg, st));
}

static drt_status emit_clip(drt_cg *cg, const drt_node *n) {
  const drt_value *x = n->inputs[0];
  drt_dtype st = drt_cg_storage(cg, x);
  cclass c = class_of(st);
  if (c == CC_OTHER || c == CC_BOOL) return unsupported_dtype("input", x->dtype);
  ek k;
  DRT_RETURN_IF_ERROR(ek_from_node(cg, n, 1, 1, &k));
  sb_printf(&k.body, "      y0 = v0;\n");
  if (n->opset < 11) {
    char lo[96], hi[96];
    if (drt_node_attr(n, "min")) {
      lit_of_dtype(cg, st, (double)drt_node_attr_float(n, "min", 0), lo, sizeof lo);
      sb_printf(&k.body, "      y0 = y0 < %s ? %s : y0;\n", lo, lo);
    }
    if (drt_node_attr(n, "max")) {
      lit_of_dtype(cg, st, (double)drt_node_attr_float(n, "max", 0), hi, sizeof hi);
      sb_printf(&k.body, "      y0 = y0 > %s ? %s : y0;\n", hi, hi);
    }
    return ek_emit(cg, &k);
  }
  for (int b = 1; b <= 2; b++) {
    const drt_value *bv = drt_node_input(n, b);
    if (!bv) continue;
    if (bv->dtype != x->dtype) {
      sb_free(&k.body);
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input %d (%s) dtype differs from input 0", b, b == 1 ? "min" : "max");
    }
    if (!bv->has_shape || drt_shape_numel(&bv->shape) != 1) {
      sb_free(&k.body);
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input %d (%s) must be a scalar", b, b == 1 ? "min" : "max");
    }
    int idx = k.nin;
    drt_status s = ek_add_value(cg, &k, bv);
    if (s) {
      sb_free(&k.body);
      return s;
    }
    /* the bound broadcasts as a scalar whatever its rank */
    k.in_shape[idx].rank = 0;
    sb_printf(&k.body, "      y0 = y0 %s v%d ? v%d : y0;\n", b == 1 ? "<" : ">", idx, idx);
  }
  return ek_emit(cg, &k);
}

/* Cast expression from compute class of `src` to dtype `dst` (ir/dtype.c drt_convert). */
static const char *cast_expr(drt_dtype src, drt_dtype dst, char *buf, size_t n) {
  cclass sc = class_of(src), dc = class_of(dst);
  bool src_int = sc == CC_SINT || sc == CC_UINT || sc == CC_BOOL;
  if (sc == CC_OTHER || dc == CC_OTHER) return NULL;
  if (src_int && (dc == CC_SINT || dc == CC_UINT)) {
    snprintf(buf, n, "(long long)v0");
    return buf;
  }
  switch (dc) {
    case CC_FLOAT: snprintf(buf, n, src_int ? "(float)(double)v0" : "(float)v0"); return buf;
    case CC_DOUBLE: snprintf(buf, n, "(double)v0"); return buf;
    case CC_BOOL: snprintf(buf, n, "v0 != 0"); return buf;
    default: break;
  }
  const char *fn = NULL;
  switch (dst) {
    case DRT_DTYPE_INT8: fn = "drt_cvt_i8"; break;
    case DRT_DTYPE_INT16: fn = "drt_cvt_i16"; break;
    case DRT_DTYPE_INT32: fn = "drt_cvt_i32"; break;
    case DRT_DTYPE_INT64: fn = "drt_cvt_i64"; break;
    case DRT_DTYPE_UINT8: fn = "drt_cvt_u8"; break;
    case DRT_DTYPE_UINT16: fn = "drt_cvt_u16"; break;
    case DRT_DTYPE_UINT32: fn = "drt_cvt_u32"; break;
    case DRT_DTYPE_UINT64: fn = "drt_cvt_u64"; break;
    default: return NULL;
  }
  snprintf(buf, n, "%s((double)v0)", fn);
  return buf;
}

/* "EB, MB, BIAS, KIND" of drt_mf_encode/drt_mf_decode for a minifloat dtype, NULL otherwise. */
static const char *minifloat_params(drt_dtype dt) {
  switch (dt) {
    case DRT_DTYPE_FLOAT8E4M3FN: return "4, 3, 7, 1";
    case DRT_DTYPE_FLOAT8E4M3FNUZ: return "4, 3, 8, 2";
    case DRT_DTYPE_FLOAT8E5M2: return "5, 2, 15, 0";
    case DRT_DTYPE_FLOAT8E5M2FNUZ: return "5, 2, 16, 2";
    case DRT_DTYPE_FLOAT4E2M1: return "2, 1, 1, 3";
    case DRT_DTYPE_FLOAT6E2M3: return "2, 3, 1, 3";
    case DRT_DTYPE_FLOAT6E3M2: return "3, 2, 3, 3";
    default: return NULL;
  }
}

/* QuantizeLinear / DequantizeLinear: one kernel (kernels/elementwise.cuh, drt_quantize /
 * drt_dequantize, drt_quantize_mf / drt_dequantize_mf for float8/float4/float6) for every
 * granularity of drt_quant_layout; int4/int2 are bytes with their own saturation range. */
static drt_status emit_quantize(drt_cg *cg, const drt_node *n) {
  bool dq = n->op == DRT_OP_DEQUANTIZE_LINEAR;
  const drt_value *x = n->inputs[0], *sc = n->inputs[1], *zp = drt_node_input(n, 2), *y = n->outputs[0];
  drt_quant_geom q;
  DRT_RETURN_IF_ERROR(drt_quant_layout(n, &x->shape, &sc->shape, &q));
  int64_t total = drt_shape_numel(&x->shape);
  if (total == 0) return DRT_OK;
  drt_dtype qt = dq ? x->dtype : y->dtype;
  const char *TQ = qt == DRT_DTYPE_INT8 || qt == DRT_DTYPE_INT4 || qt == DRT_DTYPE_INT2 ? "signed char"
                   : qt == DRT_DTYPE_UINT8 || qt == DRT_DTYPE_UINT4 || qt == DRT_DTYPE_UINT2 ? "unsigned char"
                   : qt == DRT_DTYPE_INT16 ? "short" : qt == DRT_DTYPE_UINT16 ? "unsigned short"
                   : qt == DRT_DTYPE_INT32 ? "int" : NULL;
  const char *mf = minifloat_params(qt); /* float8/float4/float6: EB, MB, BIAS, KIND */
  drt_dtype st = drt_cg_storage(cg, sc);
  if ((!TQ && !mf) || (zp && drt_cg_storage(cg, zp) != qt) || drt_cg_storage(cg, dq ? x : y) != qt ||
      drt_dtype_is_lowp(st))
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "quantized dtype %s%s has no CUDA kernel", drt_dtype_name(qt),
                     drt_dtype_is_lowp(st) ? " with a float8e8m0 scale" : "");
  double lo = qt == DRT_DTYPE_INT8 ? -128 : qt == DRT_DTYPE_INT16 ? -32768 : qt == DRT_DTYPE_INT32 ? -2147483648.0
              : qt == DRT_DTYPE_INT4 ? -8 : qt == DRT_DTYPE_INT2 ? -2 : 0;
  double hi = qt == DRT_DTYPE_INT8 ? 127 : qt == DRT_DTYPE_UINT8 ? 255 : qt == DRT_DTYPE_INT16 ? 32767
              : qt == DRT_DTYPE_UINT16 ? 65535 : qt == DRT_DTYPE_INT4 ? 7 : qt == DRT_DTYPE_UINT4 ? 15
              : qt == DRT_DTYPE_INT2 ? 1 : qt == DRT_DTYPE_UINT2 ? 3 : 2147483647.0;
  const char *it = total < DRT_CG_INT_INDEX_LIMIT ? "int" : "long long";
  const char *TS = drt_cg_ctype(cg, st);
  const char *TF = drt_cg_ctype(cg, drt_cg_storage(cg, dq ? y : x));
  int64_t inner = q.mode ? q.inner : 1, len = q.mode ? q.len : 1, slen = q.mode ? q.slen : 1, blk = q.mode ? q.block : 1;
  char zarg[64];
  snprintf(zarg, sizeof zarg, zp ? "(const %s *)a.u[3]" : "(const %s *)0", TQ ? TQ : "unsigned char");
  int32_t kern;
  if (mf) {
    /* the zero point of float8 is 0 and not read (the CPU checks it on DequantizeLinear: such
       a node stays on the host); float4/float6 add it when quantizing, float6 alone subtracts it
       when dequantizing (as onnx.reference) */
    bool f8 = DRT_DT_BIT(qt) & DRT_DT_FLOAT8, use_zp = zp && !f8 && (!dq || qt != DRT_DTYPE_FLOAT4E2M1);
    if (dq && zp && f8) return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "a float8 zero point is checked on the host");
    if (drt_node_attr_int(n, "precision", 0) != 0 && drt_node_attr_int(n, "precision", 0) != DRT_DTYPE_FLOAT32)
      return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "QuantizeLinear precision other than float32");
    /* y, x: (TF *)y and (const unsigned char *)q to dequantize, (unsigned char *)y and (const TF *)x
       to quantize (which also takes `saturate`) */
    char ycast[64], xcast[64];
    snprintf(ycast, sizeof ycast, "%s *", dq ? TF : "unsigned char");
    snprintf(xcast, sizeof xcast, "const %s *", dq ? "unsigned char" : TF);
    DRT_RETURN_IF_ERROR(drt_cg_kernel(
        cg, 256, &kern,
        "extern \"C\" __global__ void __launch_bounds__(256) @NAME@(drt_kargs a) {\n"
        "  drt_%squantize_mf<%d, %s, %s, %s, %s, %s>((%s)a.u[0], (%s)a.u[1], (const %s *)a.u[2], "
        "%s, (%s)%" PRId64 ", (%s)%" PRId64 ", (%s)%" PRId64 ", (%s)%" PRId64 ", (%s)%" PRId64 "%s);\n}",
        dq ? "de" : "", (int)q.mode, mf, use_zp ? "true" : "false", TF, TS, it, ycast, xcast, TS, zarg, it, total, it,
        inner, it, len, it, slen, it, blk,
        dq ? "" : drt_node_attr_int(n, "saturate", 1) ? ", true" : ", false"));
  } else if (drt_node_attr_int(n, "precision", 0) != 0 && drt_node_attr_int(n, "precision", 0) != DRT_DTYPE_FLOAT32) {
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "QuantizeLinear precision other than float32");
  } else if (dq) {
    DRT_RETURN_IF_ERROR(drt_cg_kernel(
        cg, 256, &kern,
        "extern \"C\" __global__ void __launch_bounds__(256) @NAME@(drt_kargs a) {\n"
        "  drt_dequantize<%d, %s, %s, %s, %s>((%s *)a.u[0], (const %s *)a.u[1], (const %s *)a.u[2], %s, (%s)%" PRId64
        ", (%s)%" PRId64 ", (%s)%" PRId64 ", (%s)%" PRId64 ", (%s)%" PRId64 ");\n}",
        (int)q.mode, TF, TQ, TS, it, TF, TQ, TS, zarg, it, total, it, inner, it, len, it, slen, it, blk));
  } else {
    DRT_RETURN_IF_ERROR(drt_cg_kernel(
        cg, 256, &kern,
        "extern \"C\" __global__ void __launch_bounds__(256) @NAME@(drt_kargs a) {\n"
        "  drt_quantize<%d, %s, %s, %s, %s, %s>((%s *)a.u[0], (const %s *)a.u[1], (const %s *)a.u[2], %s, (%s)%" PRId64
        ", (%s)%" PRId64 ", (%s)%" PRId64 ", (%s)%" PRId64 ", (%s)%" PRId64 ", %.1ff, %.1ff);\n}",
        (int)q.mode, TQ, TF, TS, TQ, it, TQ, TF, TS, zarg, it, total, it, inner, it, len, it, slen, it, blk, lo, hi));
  }
  uint32_t grid[3] = {drt_cg_blocks(total, 256, 1u << 20), 1, 1}, block[3] = {256, 1, 1};
  drt_cuda_arg args[4] = {drt_cg_arg_value(y), drt_cg_arg_value(x), drt_cg_arg_value(sc),
                          zp ? drt_cg_arg_value(zp) : drt_cg_arg_value(sc)};
  return drt_cg_launch(cg, kern, grid, block, 0, args, zp ? 4 : 3);
}

static drt_status emit_cast(drt_cg *cg, const drt_node *n) {
  const drt_value *x = n->inputs[0], *y = n->outputs[0];
  drt_dtype sst = drt_cg_storage(cg, x), dst = drt_cg_storage(cg, y);
  /* a byte copy when the storage types agree (a same-dtype Cast of a float32-storage activation
     into a 16-bit output converts) */
  if (sst == dst && (x->dtype == y->dtype || is_floatlike(sst))) return emit_copy(cg, n, x, y);
  char buf[64];
  const char *e = cast_expr(sst, dst, buf, sizeof buf);
  if (!e) return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "cast from %s to %s", drt_dtype_name(x->dtype), drt_dtype_name(y->dtype));
  ek k;
  DRT_RETURN_IF_ERROR(ek_from_node(cg, n, 1, 1, &k));
  sb_printf(&k.body, "      y0 = %s;\n", e);
  return ek_emit(cg, &k);
}

static drt_status emit_identity(drt_cg *cg, const drt_node *n) { return emit_copy(cg, n, n->inputs[0], n->outputs[0]); }

static drt_status emit_dropout(drt_cg *cg, const drt_node *n) {
  const drt_value *tm = drt_node_input(n, 2);
  if (n->opset >= 12 && tm) {
    double training = 0;
    drt_status s = drt_value_const_scalar(tm, &training);
    if (s) {
      drt_status_free(s);
      return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "training_mode must be a compile-time constant");
    }
    if (training != 0) {
      double ratio = 0.5;
      const drt_value *rv = drt_node_input(n, 1);
      if (rv) {
        s = drt_value_const_scalar(rv, &ratio);
        if (s) {
          drt_status_free(s);
          return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "ratio must be a compile-time constant in training mode");
        }
      }
      if (ratio != 0)
        return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "training mode (training_mode=true, ratio=%g) is not supported", ratio);
    }
  }
  if (n->num_outputs < 2 || !n->outputs[1]) return emit_copy(cg, n, n->inputs[0], n->outputs[0]);
  ek k;
  DRT_RETURN_IF_ERROR(ek_from_node(cg, n, 1, 2, &k));
  sb_printf(&k.body, "      y0 = v0;\n      y1 = 1;\n");
  return ek_emit(cg, &k);
}

const drt_cg_emitter drt_cg_emitters_elementwise[] = {
    {DRT_OP_FUSED_ELEMENTWISE, emit_fused_elementwise},
    {DRT_OP_ABS, emit_unary},
    {DRT_OP_NEG, emit_unary},
    {DRT_OP_SQRT, emit_unary},
    {DRT_OP_RECIPROCAL, emit_unary},
    {DRT_OP_EXP, emit_unary},
    {DRT_OP_LOG, emit_unary},
    {DRT_OP_ERF, emit_unary},
    {DRT_OP_TANH, emit_unary},
    {DRT_OP_SIGMOID, emit_unary},
    {DRT_OP_RELU, emit_unary},
    {DRT_OP_LEAKY_RELU, emit_unary},
    {DRT_OP_ELU, emit_unary},
    {DRT_OP_SELU, emit_unary},
    {DRT_OP_CELU, emit_unary},
    {DRT_OP_SIN, emit_unary},
    {DRT_OP_COS, emit_unary},
    {DRT_OP_TAN, emit_unary},
    {DRT_OP_ASIN, emit_unary},
    {DRT_OP_ACOS, emit_unary},
    {DRT_OP_ATAN, emit_unary},
    {DRT_OP_SINH, emit_unary},
    {DRT_OP_COSH, emit_unary},
    {DRT_OP_ASINH, emit_unary},
    {DRT_OP_ACOSH, emit_unary},
    {DRT_OP_ATANH, emit_unary},
    {DRT_OP_FLOOR, emit_unary},
    {DRT_OP_CEIL, emit_unary},
    {DRT_OP_ROUND, emit_unary},
    {DRT_OP_SIGN, emit_unary},
    {DRT_OP_GELU, emit_unary},
    {DRT_OP_HARD_SIGMOID, emit_unary},
    {DRT_OP_HARD_SWISH, emit_unary},
    {DRT_OP_MISH, emit_unary},
    {DRT_OP_SOFTPLUS, emit_unary},
    {DRT_OP_SOFTSIGN, emit_unary},
    {DRT_OP_SWISH, emit_unary},
    {DRT_OP_THRESHOLDED_RELU, emit_unary},
    {DRT_OP_SHRINK, emit_unary},
    {DRT_OP_NOT, emit_not},
    {DRT_OP_ISNAN, emit_classify},
    {DRT_OP_ISINF, emit_classify},
    {DRT_OP_CLIP, emit_clip},
    {DRT_OP_CAST, emit_cast},
    {DRT_OP_QUANTIZE_LINEAR, emit_quantize},
    {DRT_OP_DEQUANTIZE_LINEAR, emit_quantize},
    {DRT_OP_CAST_LIKE, emit_cast},
    {DRT_OP_IDENTITY, emit_identity},
    {DRT_OP_DROPOUT, emit_dropout},
    {DRT_OP_ADD, emit_binary},
    {DRT_OP_SUB, emit_binary},
    {DRT_OP_MUL, emit_binary},
    {DRT_OP_DIV, emit_binary},
    {DRT_OP_MOD, emit_binary},
    {DRT_OP_PRELU, emit_binary},
    {DRT_OP_EQUAL, emit_binary},
    {DRT_OP_LESS, emit_binary},
    {DRT_OP_LESS_OR_EQUAL, emit_binary},
    {DRT_OP_GREATER, emit_binary},
    {DRT_OP_GREATER_OR_EQUAL, emit_binary},
    {DRT_OP_AND, emit_binary},
    {DRT_OP_OR, emit_binary},
    {DRT_OP_XOR, emit_binary},
    {DRT_OP_POW, emit_pow},
    {DRT_OP_SUM, emit_variadic},
    {DRT_OP_MEAN, emit_variadic},
    {DRT_OP_MAX, emit_variadic},
    {DRT_OP_MIN, emit_variadic},
    {DRT_OP_WHERE, emit_where},
    {DRT_OP_COUNT_, NULL},
};
