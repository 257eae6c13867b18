/* codegen/kernels/runtime.cuh: the fixed runtime kernels every program contains (names in
 * codegen/codegen.h). Each is a template over the activation type ACT (float / __half /
 * __nv_bfloat16) and the block size BLOCK; codegen/codegen.c instantiates it for the program's
 * precision under its fixed extern "C" name, e.g.
 *   extern "C" __global__ void __launch_bounds__(256) drt_f32_to_act(drt_kargs a) {
 *     drt_rt_f32_to_act<__half, 256>(a); }
 * All are grid-stride loops: any grid size is correct. Argument slots (a.u[i]) are listed with
 * each kernel; "f64 bits" is the IEEE-754 binary64 pattern of a double, "f32 bits" the binary32
 * pattern in the low 32 bits. */

/* drt_f32_to_act  u[0] dst ACT*, u[1] src const float*, u[2] n:  dst[i] = (ACT)src[i] (nearest even). */
template <typename ACT, int BLOCK> __device__ __forceinline__ void drt_rt_f32_to_act(drt_kargs a) {
  ACT *dst = (ACT *)a.u[0];
  const float *src = (const float *)a.u[1];
  long long n = (long long)a.u[2];
  DRT_GRID_STRIDE(i, n) dst[i] = drt_from_f32<ACT>(src[i]);
}

/* drt_act_to_f32  u[0] dst float*, u[1] src const ACT*, u[2] n:  dst[i] = (float)src[i]. */
template <typename ACT, int BLOCK> __device__ __forceinline__ void drt_rt_act_to_f32(drt_kargs a) {
  float *dst = (float *)a.u[0];
  const ACT *src = (const ACT *)a.u[1];
  long long n = (long long)a.u[2];
  DRT_GRID_STRIDE(i, n) dst[i] = drt_to_f32(src[i]);
}

/* drt_fill_scalar  u[0] dst ACT*, u[1] n, u[2] value (f64 bits):  dst[i] = (ACT)(float)value. */
template <typename ACT, int BLOCK> __device__ __forceinline__ void drt_rt_fill_scalar(drt_kargs a) {
  ACT *dst = (ACT *)a.u[0];
  long long n = (long long)a.u[1];
  ACT v = drt_from_f32<ACT>((float)drt_imm_f64(a.u[2]));
  DRT_GRID_STRIDE(i, n) dst[i] = v;
}

/* drt_count_nonfinite  u[0] src const ACT*, u[1] n, u[2] counter unsigned*:
 * *counter += number of NaN/Inf elements (atomically; the caller zeroes the counter). */
template <typename ACT, int BLOCK> __device__ __forceinline__ void drt_rt_count_nonfinite(drt_kargs a) {
  const ACT *src = (const ACT *)a.u[0];
  long long n = (long long)a.u[1];
  unsigned *counter = (unsigned *)a.u[2];
  unsigned c = 0;
  DRT_GRID_STRIDE(i, n) {
    float x = drt_to_f32(src[i]);
    c += (x - x == 0.0f) ? 0u : 1u;
  }
  if (c) atomicAdd(counter, c);
}

/* ---- Philox4x32-10 and the reproducible Box-Muller of runtime/philox.h -------------------------
 * A bit-exact port of runtime/philox.c: the same rounds and the same binary64 operations in the
 * same order, each one an explicit round-to-nearest intrinsic so the compiler cannot contract
 * a*b+c into an FMA. Element i of stream `stream` under `seed` is lane i % 4 of block i / 4. */
__device__ __forceinline__ void drt_philox4x32_10(unsigned c0, unsigned c1, unsigned c2, unsigned c3, unsigned k0,
                                                  unsigned k1, unsigned out[4]) {
#pragma unroll
  for (int r = 0; r < 10; r++) {
    if (r > 0) {
      k0 += 0x9E3779B9u;
      k1 += 0xBB67AE85u;
    }
    unsigned long long p0 = (unsigned long long)0xD2511F53u * c0;
    unsigned long long p1 = (unsigned long long)0xCD9E8D57u * c2;
    unsigned hi0 = (unsigned)(p0 >> 32), lo0 = (unsigned)p0;
    unsigned hi1 = (unsigned)(p1 >> 32), lo1 = (unsigned)p1;
    c0 = hi1 ^ c1 ^ k0;
    c1 = lo1;
    c2 = hi0 ^ c3 ^ k1;
    c3 = lo0;
  }
  out[0] = c0;
  out[1] = c1;
  out[2] = c2;
  out[3] = c3;
}

#define DRT_PX_MA(p, z, c) __dadd_rn(__dmul_rn((p), (z)), (c))

/* drt_philox_log of runtime/philox.c for u in (0, 1] (u is a normal number here). */
__device__ __forceinline__ double drt_philox_log(double u) {
  unsigned long long bits = (unsigned long long)__double_as_longlong(u);
  int e = (int)((bits >> 52) & 0x7ffull) - 1022; /* frexp: u = m * 2^e, m in [0.5, 1) */
  double m = __longlong_as_double((long long)((bits & 0x800fffffffffffffull) | (1022ull << 52)));
  if (m < 0.70710678118654757) {
    m = __dmul_rn(m, 2.0);
    e = e - 1;
  }
  double s = __ddiv_rn(__dadd_rn(m, -1.0), __dadd_rn(m, 1.0));
  double z = __dmul_rn(s, s);
  double p = 0.04;
  p = DRT_PX_MA(p, z, 0.043478260869565216);
  p = DRT_PX_MA(p, z, 0.047619047619047616);
  p = DRT_PX_MA(p, z, 0.05263157894736842);
  p = DRT_PX_MA(p, z, 0.058823529411764705);
  p = DRT_PX_MA(p, z, 0.06666666666666667);
  p = DRT_PX_MA(p, z, 0.07692307692307693);
  p = DRT_PX_MA(p, z, 0.09090909090909091);
  p = DRT_PX_MA(p, z, 0.1111111111111111);
  p = DRT_PX_MA(p, z, 0.14285714285714285);
  p = DRT_PX_MA(p, z, 0.2);
  p = DRT_PX_MA(p, z, 0.3333333333333333);
  p = DRT_PX_MA(p, z, 1.0);
  double logm = __dmul_rn(__dmul_rn(2.0, s), p);
  return __dadd_rn(__dmul_rn((double)e, 0.6931471805599453), logm);
}

__device__ __forceinline__ void drt_philox_sincos_poly(double theta, double *s, double *c) {
  double z = __dmul_rn(theta, theta);
  double ps = -3.868170170630684e-23;
  ps = DRT_PX_MA(ps, z, 1.9572941063391263e-20);
  ps = DRT_PX_MA(ps, z, -8.22063524662433e-18);
  ps = DRT_PX_MA(ps, z, 2.8114572543455206e-15);
  ps = DRT_PX_MA(ps, z, -7.647163731819816e-13);
  ps = DRT_PX_MA(ps, z, 1.6059043836821613e-10);
  ps = DRT_PX_MA(ps, z, -2.505210838544172e-08);
  ps = DRT_PX_MA(ps, z, 2.7557319223985893e-06);
  ps = DRT_PX_MA(ps, z, -0.0001984126984126984);
  ps = DRT_PX_MA(ps, z, 0.008333333333333333);
  ps = DRT_PX_MA(ps, z, -0.16666666666666666);
  ps = DRT_PX_MA(ps, z, 1.0);
  *s = __dmul_rn(theta, ps);
  double pc = -8.896791392450574e-22;
  pc = DRT_PX_MA(pc, z, 4.110317623312165e-19);
  pc = DRT_PX_MA(pc, z, -1.5619206968586225e-16);
  pc = DRT_PX_MA(pc, z, 4.779477332387385e-14);
  pc = DRT_PX_MA(pc, z, -1.1470745597729725e-11);
  pc = DRT_PX_MA(pc, z, 2.08767569878681e-09);
  pc = DRT_PX_MA(pc, z, -2.755731922398589e-07);
  pc = DRT_PX_MA(pc, z, 2.48015873015873e-05);
  pc = DRT_PX_MA(pc, z, -0.001388888888888889);
  pc = DRT_PX_MA(pc, z, 0.041666666666666664);
  pc = DRT_PX_MA(pc, z, -0.5);
  pc = DRT_PX_MA(pc, z, 1.0);
  *c = pc;
}

__device__ __forceinline__ void drt_box_muller(unsigned xa, unsigned xb, float *za, float *zb) {
  double u = __dmul_rn(__dadd_rn((double)xa, 0.5), 2.3283064365386963e-10);
  double r = __dsqrt_rn(__dmul_rn(-2.0, drt_philox_log(u)));
  unsigned q = xb >> 30;
  double f = __dmul_rn((double)(xb & 0x3fffffffu), 9.313225746154785e-10);
  double theta = __dmul_rn(f, 1.5707963267948966);
  double s, c, cs, sn;
  drt_philox_sincos_poly(theta, &s, &c);
  if (q == 0) {
    cs = c;
    sn = s;
  } else if (q == 1) {
    cs = -s;
    sn = c;
  } else if (q == 2) {
    cs = -c;
    sn = -s;
  } else {
    cs = s;
    sn = -c;
  }
  *za = __double2float_rn(__dmul_rn(r, cs));
  *zb = __double2float_rn(__dmul_rn(r, sn));
}

/* The four standard normals of Philox block `block` (elements 4*block .. 4*block+3). */
__device__ __forceinline__ void drt_philox_normal4(unsigned long long seed, unsigned long long stream,
                                                   unsigned long long block, float z[4]) {
  unsigned x[4];
  drt_philox4x32_10((unsigned)block, (unsigned)(block >> 32), (unsigned)stream, (unsigned)(stream >> 32),
                    (unsigned)seed, (unsigned)(seed >> 32), x);
  drt_box_muller(x[0], x[1], &z[0], &z[1]);
  drt_box_muller(x[2], x[3], &z[2], &z[3]);
}
#undef DRT_PX_MA

/* drt_philox_normal  u[0] dst ACT*, u[1] n, u[2] seed const unsigned long long* (device),
 *                    u[3] stream, u[4] scale (f32 bits; 0 means 1):
 * dst[i] = (ACT)(z_i * scale), z_i the normal of element i (runtime/philox.h layout); with
 * scale 1 and ACT float the values equal drt_philox_normal(seed, stream, 0, dst, n) bit for bit.
 * One thread per Philox block of 4 elements. */
template <typename ACT, int BLOCK> __device__ __forceinline__ void drt_rt_philox_normal(drt_kargs a) {
  ACT *dst = (ACT *)a.u[0];
  long long n = (long long)a.u[1];
  unsigned long long seed = *(const unsigned long long *)a.u[2];
  unsigned long long stream = a.u[3];
  float scale = drt_imm_f32(a.u[4]);
  bool scaled = (unsigned)a.u[4] != 0u && scale != 1.0f;
  DRT_GRID_STRIDE(q, (n + 3) / 4) {
    float z[4];
    drt_philox_normal4(seed, stream, (unsigned long long)q, z);
#pragma unroll
    for (int l = 0; l < 4; l++) {
      long long i = q * 4 + l;
      if (i < n) dst[i] = drt_from_f32<ACT>(scaled ? z[l] * scale : z[l]);
    }
  }
}

/* drt_sampler_step: one fused step of the sampling loop (runtime/sampler.c drt_sched_update with
 * the per-step scalars folded on the host: kx = a*p_x + b*q_x, km = a*p_m + b*q_m, kn = c):
 *   u[0]  x_out float*                 u[1]  x_in const float* (NULL: zeros; may equal x_out)
 *   u[2]  pred const ACT* (NULL: zeros) u[3]  uncond const ACT* (NULL: zeros)
 *   u[4]  n                            u[5..8] kx, km, ku, kn (f64 bits)
 *   u[9]  seed const unsigned long long* (device)    u[10] noise stream
 *   u[11] noise_in const float* (NULL: Philox normals of (seed, stream, i) when kn != 0)
 *   u[12] next_in ACT* (NULL: none)   u[13] c_in_next (f64 bits)
 *   x_out[i] = (float)(kx*x_in[i] + km*pred[i] + ku*uncond[i] + kn*noise[i])   binary64, left to
 *              right, no FMA; a term whose operand is NULL (or kn == 0 for noise) is left out
 *   next_in[i] = (ACT)(float)(c_in_next * (double)x_out[i])   (drt_sched_model_input)
 * One thread per 4 elements (one Philox block). In place on x when x_out == x_in. */
template <typename ACT, int BLOCK> __device__ __forceinline__ void drt_rt_sampler_step(drt_kargs a) {
  float *x_out = (float *)a.u[0];
  const float *x_in = (const float *)a.u[1];
  const ACT *pred = (const ACT *)a.u[2];
  const ACT *uncond = (const ACT *)a.u[3];
  long long n = (long long)a.u[4];
  double kx = drt_imm_f64(a.u[5]), km = drt_imm_f64(a.u[6]), ku = drt_imm_f64(a.u[7]), kn = drt_imm_f64(a.u[8]);
  const unsigned long long *seed_p = (const unsigned long long *)a.u[9];
  unsigned long long stream = a.u[10];
  const float *noise_in = (const float *)a.u[11];
  ACT *next_in = (ACT *)a.u[12];
  double c_next = drt_imm_f64(a.u[13]);
  bool use_noise = kn != 0.0 && (noise_in || seed_p);
  bool philox = use_noise && !noise_in;
  unsigned long long seed = philox ? *seed_p : 0ull;
  DRT_GRID_STRIDE(q, (n + 3) / 4) {
    float z[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    if (philox) drt_philox_normal4(seed, stream, (unsigned long long)q, z);
#pragma unroll
    for (int l = 0; l < 4; l++) {
      long long i = q * 4 + l;
      if (i >= n) break;
      double acc = 0.0;
      bool any = false;
      if (x_in) {
        acc = __dmul_rn(kx, (double)x_in[i]);
        any = true;
      }
      if (pred) {
        double t = __dmul_rn(km, (double)drt_to_f32(pred[i]));
        acc = any ? __dadd_rn(acc, t) : t;
        any = true;
      }
      if (uncond) {
        double t = __dmul_rn(ku, (double)drt_to_f32(uncond[i]));
        acc = any ? __dadd_rn(acc, t) : t;
        any = true;
      }
      if (use_noise) {
        double t = __dmul_rn(kn, (double)(noise_in ? noise_in[i] : z[l]));
        acc = any ? __dadd_rn(acc, t) : t;
      }
      float xo = __double2float_rn(acc);
      x_out[i] = xo;
      if (next_in) next_in[i] = drt_from_f32<ACT>(__double2float_rn(__dmul_rn(c_next, (double)xo)));
    }
  }
}
