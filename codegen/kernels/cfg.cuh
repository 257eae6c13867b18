/* codegen/kernels/cfg.cuh: drt.CfgCombine (classifier-free guidance), emitted by
 * codegen/emit_norm.c; runtime/cpu/fused_cfg.c is the reference. X holds the conditional half
 * and then the unconditional half along `axis`; w (input 1) is read on the device so a graph can
 * take the guidance scale as an input.
 *
 * Config class C (defined by the generated wrapper, see norm.cuh): typedefs T (x, y, u, state)
 * and TW (guidance scale); enumerators BLOCK, VEC, and per kernel below. Uses the conversion and
 * vector helpers of norm.cuh (drt_nrm_f / drt_nrm_t / drt_nrm_load / drt_nrm_store). */

/* standard and cfgpp: Y = u + w (c - u) (and U = u), elementwise over OUTER x HALF outputs.
 * Config: HALF (elements of one half per outer slice), TOTAL (OUTER * HALF), U (write U).
 * Args u[0] x, u[1] w, u[2] y, u[3] U. HALF % VEC == 0. */
template <class C> __device__ __forceinline__ void drt_cfg_standard(const drt_kargs &a) {
  enum { V = C::VEC };
  const typename C::T *x = (const typename C::T *)a.u[0];
  float w = drt_nrm_f(*(const typename C::TW *)a.u[1]);
  typename C::T *y = (typename C::T *)a.u[2];
  const long long step = (long long)gridDim.x * C::BLOCK * V;
  for (long long t = ((long long)blockIdx.x * C::BLOCK + threadIdx.x) * V; t < (long long)C::TOTAL; t += step) {
    long long o = t / (long long)C::HALF, i = t % (long long)C::HALF;
    const typename C::T *c = x + o * 2 * (long long)C::HALF + i;
    float cv[V], uv[V], yv[V];
    drt_nrm_load<typename C::T, V>(c, cv);
    drt_nrm_load<typename C::T, V>(c + C::HALF, uv);
#pragma unroll
    for (int k = 0; k < V; k++) yv[k] = uv[k] + w * (cv[k] - uv[k]);
    drt_nrm_store<typename C::T, V>(y + t, yv);
    if constexpr (C::U != 0) drt_nrm_store<typename C::T, V>((typename C::T *)a.u[3] + t, uv);
  }
}

/* Block sums of two doubles through shared memory (every thread calls; all get the totals). */
template <int BLOCK> __device__ __forceinline__ void drt_cfg_sum2(double &p, double &q) {
  __shared__ double r0[BLOCK], r1[BLOCK];
  __syncthreads(); /* the previous call's readers are done */
  r0[threadIdx.x] = p;
  r1[threadIdx.x] = q;
  __syncthreads();
#pragma unroll
  for (int s = BLOCK / 2; s > 0; s >>= 1) {
    if ((int)threadIdx.x < s) {
      r0[threadIdx.x] += r0[threadIdx.x + s];
      r1[threadIdx.x] += r1[threadIdx.x + s];
    }
    __syncthreads();
  }
  p = r0[0];
  q = r1[0];
}

/* rescale: one block per sample of N elements; the sample's cond part is sample s of X, its
 * uncond part sample SAMPLES + s. g = u + w (c - u); Y = phi g std(c)/std(g) + (1 - phi) g with
 * unbiased std in double (factor 1 when N == 1 or var(g) == 0). Args u[0] x, u[1] w, u[2] y. */
template <class C> __device__ __forceinline__ void drt_cfg_rescale(const drt_kargs &a, double phi) {
  enum { V = C::VEC };
  long long smp = blockIdx.x;
  const typename C::T *c = (const typename C::T *)a.u[0] + smp * (long long)C::N;
  const typename C::T *u = c + (long long)C::SAMPLES * C::N;
  float w = drt_nrm_f(*(const typename C::TW *)a.u[1]);
  typename C::T *y = (typename C::T *)a.u[2] + smp * (long long)C::N;
  double sc = 0.0, sg = 0.0;
  for (long long j = (long long)threadIdx.x * V; j < (long long)C::N; j += (long long)C::BLOCK * V) {
    float cv[V], uv[V];
    drt_nrm_load<typename C::T, V>(c + j, cv);
    drt_nrm_load<typename C::T, V>(u + j, uv);
#pragma unroll
    for (int k = 0; k < V; k++) {
      sc += cv[k];
      sg += uv[k] + w * (cv[k] - uv[k]);
    }
  }
  drt_cfg_sum2<C::BLOCK>(sc, sg);
  double mc = sc / (double)C::N, mg = sg / (double)C::N, vc = 0.0, vg = 0.0;
  for (long long j = (long long)threadIdx.x * V; j < (long long)C::N; j += (long long)C::BLOCK * V) {
    float cv[V], uv[V];
    drt_nrm_load<typename C::T, V>(c + j, cv);
    drt_nrm_load<typename C::T, V>(u + j, uv);
#pragma unroll
    for (int k = 0; k < V; k++) {
      double g = (double)(uv[k] + w * (cv[k] - uv[k]));
      vc += ((double)cv[k] - mc) * ((double)cv[k] - mc);
      vg += (g - mg) * (g - mg);
    }
  }
  drt_cfg_sum2<C::BLOCK>(vc, vg);
  double factor = 1.0;
  if (C::N > 1 && vg > 0.0) factor = sqrt(vc / (double)(C::N - 1)) / sqrt(vg / (double)(C::N - 1));
  for (long long j = (long long)threadIdx.x * V; j < (long long)C::N; j += (long long)C::BLOCK * V) {
    float cv[V], uv[V], yv[V];
    drt_nrm_load<typename C::T, V>(c + j, cv);
    drt_nrm_load<typename C::T, V>(u + j, uv);
#pragma unroll
    for (int k = 0; k < V; k++) {
      double g = (double)(uv[k] + w * (cv[k] - uv[k]));
      yv[k] = (float)(phi * g * factor + (1.0 - phi) * g);
    }
    drt_nrm_store<typename C::T, V>(y + j, yv);
  }
}

/* apg: one block per sample. d = (c - u) + momentum * state (written to the state output),
 * d *= min(1, R / |d|) when R > 0, c^ = c / max(|c|, 1e-12), d_par = (d . c^) c^,
 * Y = u + w ((d - d_par) + eta d_par); norms and the projection in double.
 * Args u[0] x, u[1] w, u[2] state, u[3] y, u[4] new state. The new state is read back by the
 * thread that wrote it (the state output may share memory with the state input). */
template <class C>
__device__ __forceinline__ void drt_cfg_apg(const drt_kargs &a, double momentum, double threshold, double eta) {
  enum { V = C::VEC };
  long long smp = blockIdx.x;
  const typename C::T *c = (const typename C::T *)a.u[0] + smp * (long long)C::N;
  const typename C::T *u = c + (long long)C::SAMPLES * C::N;
  float w = drt_nrm_f(*(const typename C::TW *)a.u[1]);
  const typename C::T *st = (const typename C::T *)a.u[2] + smp * (long long)C::N;
  typename C::T *y = (typename C::T *)a.u[3] + smp * (long long)C::N;
  typename C::T *so = (typename C::T *)a.u[4] + smp * (long long)C::N;
  float beta = (float)momentum;
  double dd = 0.0, cc = 0.0;
  for (long long j = (long long)threadIdx.x * V; j < (long long)C::N; j += (long long)C::BLOCK * V) {
    float cv[V], uv[V], sv[V], dv[V];
    drt_nrm_load<typename C::T, V>(c + j, cv);
    drt_nrm_load<typename C::T, V>(u + j, uv);
    drt_nrm_load<typename C::T, V>(st + j, sv);
#pragma unroll
    for (int k = 0; k < V; k++) {
      dv[k] = (cv[k] - uv[k]) + beta * sv[k];
      dd += (double)dv[k] * dv[k];
      cc += (double)cv[k] * cv[k];
    }
    drt_nrm_store<typename C::T, V>(so + j, dv);
  }
  drt_cfg_sum2<C::BLOCK>(dd, cc);
  double s = 1.0;
  if (threshold > 0.0) {
    double norm = sqrt(dd);
    if (norm > 0.0 && threshold / norm < 1.0) s = threshold / norm;
  }
  double cn = sqrt(cc);
  if (cn < 1e-12) cn = 1e-12;
  double dot = 0.0, unused = 0.0;
  for (long long j = (long long)threadIdx.x * V; j < (long long)C::N; j += (long long)C::BLOCK * V) {
    float cv[V], dv[V];
    drt_nrm_load<typename C::T, V>(c + j, cv);
    drt_nrm_load<typename C::T, V>(so + j, dv);
#pragma unroll
    for (int k = 0; k < V; k++) dot += (double)(float)((double)dv[k] * s) * ((double)cv[k] / cn);
  }
  drt_cfg_sum2<C::BLOCK>(dot, unused);
  for (long long j = (long long)threadIdx.x * V; j < (long long)C::N; j += (long long)C::BLOCK * V) {
    float cv[V], uv[V], dv[V], yv[V];
    drt_nrm_load<typename C::T, V>(c + j, cv);
    drt_nrm_load<typename C::T, V>(u + j, uv);
    drt_nrm_load<typename C::T, V>(so + j, dv);
#pragma unroll
    for (int k = 0; k < V; k++) {
      double d = (double)(float)((double)dv[k] * s);
      double par = dot * ((double)cv[k] / cn);
      double upd = (d - par) + eta * par;
      yv[k] = (float)((double)uv[k] + (double)w * upd);
    }
    drt_nrm_store<typename C::T, V>(y + j, yv);
  }
}
