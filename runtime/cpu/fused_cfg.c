/* CPU kernel for drt.CfgCombine (see ir/ops.def and ir/cfg_combine.h), float32.
 *
 *   X = [cond | uncond] along `axis`           w = guidance scale (input 1)
 *   standard, cfgpp:  Y = u + w (c - u)        (cfgpp also writes U = u)
 *   rescale:          g = u + w (c - u);  Y = phi g std(c)/std(g) + (1 - phi) g
 *   apg:              d = (c - u) + momentum * state  (written to the state output)
 *                     d *= min(1, R / |d|)  if R > 0
 *                     d_par = (d . c^) c^,  c^ = c / max(|c|, 1e-12);  d_orth = d - d_par
 *                     Y = u + w (d_orth + eta d_par)
 * These follow diffusers' rescale_noise_cfg (torch.std: unbiased) and adaptive projected
 * guidance (normalized_guidance with the momentum buffer, projection in double). Per-sample
 * statistics accumulate in double; standard mode runs in parallel over the elements. */
#include <math.h>
#include <string.h>

#include "ir/cfg_combine.h"
#include "runtime/cpu/fused.h"

typedef struct cfg_job {
  const float *x;
  float *y, *u_out;
  float w;
  int64_t half;
} cfg_job;

/* elements [begin, end) of Y, as (outer slice, offset in the half) */
static void standard_range(void *arg, int64_t begin, int64_t end) {
  const cfg_job *j = arg;
  int64_t e = begin;
  while (e < end) {
    int64_t o = e / j->half, i0 = e % j->half, i1 = j->half;
    if (i1 - i0 > end - e) i1 = i0 + (end - e);
    const float *c = j->x + o * 2 * j->half, *u = c + j->half;
    float *y = j->y + o * j->half;
    for (int64_t i = i0; i < i1; i++) y[i] = u[i] + j->w * (c[i] - u[i]);
    if (j->u_out) memcpy(j->u_out + o * j->half + i0, u + i0, (size_t)(i1 - i0) * sizeof(float));
    e += i1 - i0;
  }
}

static void rescale_sample(const drt_cfg_combine *f, const float *c, const float *u, float w, float *y) {
  int64_t n = f->sample_size;
  double sc = 0, sg = 0;
  for (int64_t i = 0; i < n; i++) {
    y[i] = u[i] + w * (c[i] - u[i]);
    sc += c[i];
    sg += y[i];
  }
  double mc = sc / (double)n, mg = sg / (double)n, vc = 0, vg = 0;
  for (int64_t i = 0; i < n; i++) {
    vc += ((double)c[i] - mc) * ((double)c[i] - mc);
    vg += ((double)y[i] - mg) * ((double)y[i] - mg);
  }
  double factor = 1.0;
  if (n > 1 && vg > 0) factor = sqrt(vc / (double)(n - 1)) / sqrt(vg / (double)(n - 1));
  double phi = f->mode.phi;
  for (int64_t i = 0; i < n; i++) y[i] = (float)(phi * (double)y[i] * factor + (1.0 - phi) * (double)y[i]);
}

static void apg_sample(const drt_cfg_combine *f, const float *c, const float *u, const float *state, float w,
                       float *y, float *state_out) {
  int64_t n = f->sample_size;
  double beta = f->mode.momentum, dd = 0, cc = 0;
  for (int64_t i = 0; i < n; i++) {
    float d = (c[i] - u[i]) + (float)beta * state[i];
    state_out[i] = d;
    dd += (double)d * d;
    cc += (double)c[i] * c[i];
  }
  double s = 1.0;
  if (f->mode.norm_threshold > 0) {
    double norm = sqrt(dd);
    if (norm > 0 && f->mode.norm_threshold / norm < 1.0) s = f->mode.norm_threshold / norm;
  }
  double cn = sqrt(cc);
  if (cn < 1e-12) cn = 1e-12;
  double dot = 0;
  for (int64_t i = 0; i < n; i++) dot += (double)(float)(state_out[i] * s) * ((double)c[i] / cn);
  double eta = f->mode.eta;
  for (int64_t i = 0; i < n; i++) {
    double d = (double)(float)(state_out[i] * s);
    double par = dot * ((double)c[i] / cn);
    double upd = (d - par) + eta * par;
    y[i] = (float)((double)u[i] + (double)w * upd);
  }
}

drt_status drt_cpu_fused_cfg_combine(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out) {
  drt_cfg_combine f;
  DRT_RETURN_IF_ERROR(drt_cfg_combine_resolve(n, &in[0].shape, &f));
  if (in[0].dtype != DRT_DTYPE_FLOAT32 || in[1].dtype != DRT_DTYPE_FLOAT32)
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "dtype %s", drt_dtype_name(in[0].dtype));
  const float *x = in[0].data;
  float w = ((const float *)in[1].data)[0];
  float *y = out[0].data;
  switch (f.mode.kind) {
    case DRT_CFG_STANDARD:
    case DRT_CFG_CFGPP: {
      cfg_job j = {x, y, f.mode.kind == DRT_CFG_CFGPP ? (float *)out[1].data : NULL, w, f.half};
      if (f.half > 0) drt_parallel_for(ctx, f.outer * f.half, 16384, standard_range, &j);
      return DRT_OK;
    }
    case DRT_CFG_RESCALE:
      for (int64_t s = 0; s < f.samples; s++)
        rescale_sample(&f, x + s * f.sample_size, x + (f.samples + s) * f.sample_size, w, y + s * f.sample_size);
      return DRT_OK;
    case DRT_CFG_APG: {
      const float *state = in[2].data;
      float *state_out = out[1].data;
      for (int64_t s = 0; s < f.samples; s++)
        apg_sample(&f, x + s * f.sample_size, x + (f.samples + s) * f.sample_size, state + s * f.sample_size, w,
                   y + s * f.sample_size, state_out + s * f.sample_size);
      return DRT_OK;
    }
  }
  return DRT_ERROR(DRT_STATUS_INTERNAL, "unknown guidance mode");
}
