/* CPU kernel for GridSample (opsets 16, 20, 22): X [N, C, d1..dr], grid [N, o1..or, r] with
 * normalized coordinates (last entry first: grid[..., 0] indexes dr), Y [N, C, o1..or].
 *
 * Follows onnx/reference/ops/op_grid_sample.py: a coordinate is denormalized (align_corners:
 * -1 and 1 are the corner pixels' centers, else their outer edges); "nearest" rounds it half
 * to even; a coordinate beyond the border [-0.5, d - 0.5] (or [0, d - 1] with align_corners)
 * is clamped to [0, d - 1] ("border") or reflected back ("reflection"). N-linear and N-cubic
 * (Keys, a = -0.75) interpolation is separable: the sum over the 2^r or 4^r neighbours of the
 * product of per-axis weights times the neighbour, whose per-axis index is resolved by the
 * padding mode (zeros: 0 outside; border: clamped; reflection: reflected and truncated).
 * Coordinates and weights in double; X float32 (float16/bfloat16 promoted) or float64. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/cpu/cpu.h"

enum { GS_NEAREST, GS_LINEAR, GS_CUBIC };
enum { GS_ZEROS, GS_BORDER, GS_REFLECTION };

static double gs_reflect(double x, double lo, double hi) {
  double rng = hi - lo;
  if (x < lo) {
    double dx = lo - x;
    int64_t n = (int64_t)(dx / rng);
    double r = dx - (double)n * rng;
    return n % 2 == 0 ? lo + r : hi - r;
  }
  if (x > hi) {
    double dx = x - hi;
    int64_t n = (int64_t)(dx / rng);
    double r = dx - (double)n * rng;
    return n % 2 == 0 ? hi - r : lo + r;
  }
  return x;
}

static void cubic_coeffs(double x, double c[4]) {
  const double a = -0.75;
  x = fabs(x);
  c[0] = ((a * (x + 1) - 5 * a) * (x + 1) + 8 * a) * (x + 1) - 4 * a;
  c[1] = ((a + 2) * x - (a + 3)) * x * x + 1;
  c[2] = ((a + 2) * (1 - x) - (a + 3)) * (1 - x) * (1 - x) + 1;
  c[3] = ((a * (2 - x) - 5 * a) * (2 - x) + 8 * a) * (2 - x) - 4 * a;
}

/* Index i along an axis of size d under the padding mode; -1 means "zero". */
static int64_t gs_index(int64_t i, int64_t d, int pad, double lo, double hi) {
  if (pad == GS_ZEROS) return i >= 0 && i < d ? i : -1;
  if (pad == GS_BORDER) return i < 0 ? 0 : i >= d ? d - 1 : i;
  int64_t r = (int64_t)gs_reflect((double)i, lo, hi);
  return r < 0 ? 0 : r >= d ? d - 1 : r;
}

static drt_status k_grid_sample(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out) {
  (void)ctx;
  const drt_tensor *x = &in[0], *grid = &in[1];
  const int r = x->shape.rank - 2;
  const char *ms = drt_node_attr_string(n, "mode", n->opset < 20 ? "bilinear" : "linear");
  const char *ps = drt_node_attr_string(n, "padding_mode", "zeros");
  int mode = !strcmp(ms, "nearest") ? GS_NEAREST : (!strcmp(ms, "cubic") || !strcmp(ms, "bicubic")) ? GS_CUBIC : GS_LINEAR;
  int pad = !strcmp(ps, "border") ? GS_BORDER : !strcmp(ps, "reflection") ? GS_REFLECTION : GS_ZEROS;
  bool align = drt_node_attr_int(n, "align_corners", 0) != 0;
  int64_t N = x->shape.dims[0], C = x->shape.dims[1], in_sp = 1, out_sp = 1;
  int64_t dims[DRT_MAX_RANK], istride[DRT_MAX_RANK];
  double lo[DRT_MAX_RANK], hi[DRT_MAX_RANK];
  for (int i = r - 1; i >= 0; i--) {
    dims[i] = x->shape.dims[2 + i];
    istride[i] = in_sp;
    in_sp *= dims[i];
    lo[i] = align ? 0.0 : -0.5;
    hi[i] = align ? (double)dims[i] - 1 : (double)dims[i] - 0.5;
  }
  for (int i = 0; i < r; i++) out_sp *= grid->shape.dims[1 + i];
  const int taps = mode == GS_NEAREST ? 1 : mode == GS_LINEAR ? 2 : 4;
  int64_t corners = 1;
  for (int i = 0; i < r; i++) corners *= taps;
  bool f64 = x->dtype == DRT_DTYPE_FLOAT64;
  for (int64_t b = 0; b < N; b++) {
    for (int64_t o = 0; o < out_sp; o++) {
      /* per axis: the tap indices (resolved by the padding mode, -1 = zero) and weights */
      int64_t idx[DRT_MAX_RANK][4];
      double w[DRT_MAX_RANK][4];
      for (int i = 0; i < r; i++) {
        double g = drt_load_f64(grid->dtype, grid->data, (size_t)((b * out_sp + o) * r + (r - 1 - i)));
        double v = align ? (g + 1) / 2.0 * (double)(dims[i] - 1) : ((g + 1) * (double)dims[i] - 1) / 2.0;
        if (mode == GS_NEAREST) v = nearbyint(v);
        if (v < lo[i] || v > hi[i]) {
          if (pad == GS_BORDER) v = v < 0 ? 0 : v > (double)(dims[i] - 1) ? (double)(dims[i] - 1) : v;
          else if (pad == GS_REFLECTION) v = gs_reflect(v, lo[i], hi[i]);
        }
        if (mode == GS_NEAREST) {
          idx[i][0] = gs_index((int64_t)v, dims[i], pad, lo[i], hi[i]);
          w[i][0] = 1;
          continue;
        }
        double f = floor(v), t = v - f;
        int64_t i0 = (int64_t)f;
        if (mode == GS_LINEAR) {
          w[i][0] = 1 - t, w[i][1] = t;
          for (int k = 0; k < 2; k++) idx[i][k] = gs_index(i0 + k, dims[i], pad, lo[i], hi[i]);
        } else {
          cubic_coeffs(t, w[i]);
          for (int k = 0; k < 4; k++) idx[i][k] = gs_index(i0 - 1 + k, dims[i], pad, lo[i], hi[i]);
        }
      }
      for (int64_t c = 0; c < C; c++) {
        size_t base = (size_t)((b * C + c) * in_sp);
        double acc = 0;
        for (int64_t k = 0; k < corners; k++) {
          int64_t rem = k, off = 0;
          double wt = 1;
          for (int i = r - 1; i >= 0; i--) {
            int t = (int)(rem % taps);
            rem /= taps;
            if (idx[i][t] < 0) {
              wt = 0;
              break;
            }
            wt *= w[i][t];
            off += idx[i][t] * istride[i];
          }
          if (wt != 0) acc += wt * (f64 ? ((const double *)x->data)[base + (size_t)off] : ((const float *)x->data)[base + (size_t)off]);
        }
        size_t at = (size_t)((b * C + c) * out_sp + o);
        if (f64) ((double *)out[0].data)[at] = acc;
        else ((float *)out[0].data)[at] = (float)acc;
      }
    }
  }
  return DRT_OK;
}

const drt_cpu_kernel_entry drt_cpu_kernels_grid_sample[] = {
    {DRT_OP_GRID_SAMPLE, k_grid_sample, DRT_DT_BIT(DRT_DTYPE_FLOAT32) | DRT_DT_BIT(DRT_DTYPE_FLOAT64)},
    {DRT_OP_COUNT_, NULL, 0},
};
