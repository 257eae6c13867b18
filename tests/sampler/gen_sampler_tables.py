#!/usr/bin/env python3
"""Reference tables for runtime/sampler.c and runtime/philox.c.

For every case the diffusers scheduler named by the schedule (configured like the pipelines
that use it) runs its sampling loop on a 16-element latent. Model outputs, the initial noise
and every injected noise are drawn from a seeded numpy RNG and rounded to float32 (so the C
test reads them exactly); the scheduler's own randn_tensor is replaced by a feed of those
noises (DDIM takes them as variance_noise). The samples are float64 and the DDPM-family
alphas_cumprod tables are upcast to float64 after diffusers builds them in float32 (see
upcast()), so the float32 rounding left is diffusers' own tables and the casts some step()
functions do.

Recorded per case: the diffusers config, the drt schedule name/steps/options that must
reproduce it, init_noise_sigma, and per step the timestep fed to the model, the scaled model
input (omitted when the scheduler feeds the sample unscaled), the model output, the noise,
and the sample after the step. tests/unit/test_sampler.c
checks runtime/sampler.c against every case.

philox.json holds Philox4x32-10 known-answer vectors (Random123), raw blocks and the float32
bits of normals under the layout documented in runtime/philox.h, computed by the Python
implementation below (integer and binary64 arithmetic in the same order as philox.c).

Usage: python3 tests/sampler/gen_sampler_tables.py [--out tests/sampler/tables]
"""
import argparse
import contextlib
import json
import math
import os
import struct

import numpy as np
import torch
import diffusers
from diffusers import (CMStochasticIterativeScheduler, DDIMScheduler, DDPMScheduler, EulerAncestralDiscreteScheduler,
                       FlowMatchEulerDiscreteScheduler, LCMScheduler, SCMScheduler, TCDScheduler)
import diffusers.schedulers.scheduling_consistency_models as m_cm
import diffusers.schedulers.scheduling_euler_ancestral_discrete as m_ea
import diffusers.schedulers.scheduling_flow_match_euler_discrete as m_flow
import diffusers.schedulers.scheduling_lcm as m_lcm
import diffusers.schedulers.scheduling_scm as m_scm
import diffusers.schedulers.scheduling_tcd as m_tcd

N_ELEM = 16  # latent elements per case (8 for long chains, to keep the tables small)
SHAPE = (1, 1, 4, 4)
SD_BETAS = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000)

# ---------------------------------------------------------------------------------------------
# Philox4x32-10 and the Box-Muller mapping of runtime/philox.h
# ---------------------------------------------------------------------------------------------
M32 = 0xFFFFFFFF


def philox4x32_10(ctr, key):
    c0, c1, c2, c3 = ctr
    k0, k1 = key
    for r in range(10):
        if r > 0:
            k0 = (k0 + 0x9E3779B9) & M32
            k1 = (k1 + 0xBB67AE85) & M32
        p0 = 0xD2511F53 * c0
        p1 = 0xCD9E8D57 * c2
        hi0, lo0 = p0 >> 32, p0 & M32
        hi1, lo1 = p1 >> 32, p1 & M32
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
    return [c0, c1, c2, c3]


LOG_COEF = [0.04, 0.043478260869565216, 0.047619047619047616, 0.05263157894736842, 0.058823529411764705,
            0.06666666666666667, 0.07692307692307693, 0.09090909090909091, 0.1111111111111111, 0.14285714285714285,
            0.2, 0.3333333333333333, 1.0]
SIN_COEF = [-3.868170170630684e-23, 1.9572941063391263e-20, -8.22063524662433e-18, 2.8114572543455206e-15,
            -7.647163731819816e-13, 1.6059043836821613e-10, -2.505210838544172e-08, 2.7557319223985893e-06,
            -0.0001984126984126984, 0.008333333333333333, -0.16666666666666666, 1.0]
COS_COEF = [-8.896791392450574e-22, 4.110317623312165e-19, -1.5619206968586225e-16, 4.779477332387385e-14,
            -1.1470745597729725e-11, 2.08767569878681e-09, -2.755731922398589e-07, 2.48015873015873e-05,
            -0.001388888888888889, 0.041666666666666664, -0.5, 1.0]


def philox_log(u):
    m, e = math.frexp(u)
    if m < 0.70710678118654757:
        m = m * 2.0
        e = e - 1
    s = (m - 1.0) / (m + 1.0)
    z = s * s
    p = LOG_COEF[0]
    for c in LOG_COEF[1:]:
        p = p * z + c
    return float(e) * 0.6931471805599453 + 2.0 * s * p


def philox_sincos(theta):
    z = theta * theta
    ps = SIN_COEF[0]
    for c in SIN_COEF[1:]:
        ps = ps * z + c
    pc = COS_COEF[0]
    for c in COS_COEF[1:]:
        pc = pc * z + c
    return theta * ps, pc


def f32(x):
    return float(np.float32(x))


def box_muller(xa, xb):
    u = (float(xa) + 0.5) * 2.3283064365386963e-10
    r = math.sqrt(-2.0 * philox_log(u))
    q = xb >> 30
    f = float(xb & 0x3FFFFFFF) * 9.313225746154785e-10
    s, c = philox_sincos(f * 1.5707963267948966)
    cs, sn = [(c, s), (-s, c), (-c, -s), (s, -c)][q]
    return f32(r * cs), f32(r * sn)


def philox_normal(seed, stream, offset, n):
    out = []
    for i in range(offset, offset + n):
        block, lane = i // 4, i % 4
        x = philox4x32_10([block & M32, block >> 32, stream & M32, stream >> 32], [seed & M32, seed >> 32])
        z = box_muller(x[0], x[1]) + box_muller(x[2], x[3])
        out.append(z[lane])
    return out


def f32_bits(v):
    return struct.unpack("<I", struct.pack("<f", v))[0]


def philox_tables():
    kat = [
        ([0, 0, 0, 0], [0, 0], [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]),
        ([M32] * 4, [M32] * 2, [0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD]),
        ([0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344], [0xA4093822, 0x299F31D0],
         [0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1]),
    ]
    for ctr, key, want in kat:
        got = philox4x32_10(ctr, key)
        assert got == want, f"Philox KAT mismatch: {ctr} {key}: {[hex(g) for g in got]}"
    # self-check of the deterministic log / sincos against libm
    for u in (2.0**-33, 1e-9, 0.1, 0.5, 0.7071, 0.9, 1.0 - 2.0**-33):
        assert abs(philox_log(u) - math.log(u)) <= 4e-16 * max(1.0, abs(math.log(u))), u
    for th in np.linspace(0, math.pi / 2, 97):
        s, c = philox_sincos(float(th))
        assert abs(s - math.sin(th)) < 4e-16 and abs(c - math.cos(th)) < 4e-16, th
    normals = []
    for seed, stream, offset, n in [(0, 0, 0, 8), (42, 1, 3, 9), (0xDEADBEEFCAFEBABE, 7, 4 * (1 << 32) - 2, 8),
                                    (123456789, 1 << 33, 1001, 5)]:
        z = philox_normal(seed, stream, offset, n)
        normals.append({"seed": str(seed), "stream": str(stream), "offset": str(offset),
                        "bits": [f32_bits(v) for v in z]})
    blocks = []
    for ctr, key in [([5, 0, 1, 0], [42, 0]), ([1, 2, 3, 4], [0xCAFEBABE, 0xDEADBEEF])]:
        blocks.append({"ctr": ctr, "key": key, "out": philox4x32_10(ctr, key)})
    return {"kat": [{"ctr": c, "key": k, "out": o} for c, k, o in kat], "blocks": blocks, "normals": normals}


# ---------------------------------------------------------------------------------------------
# Scheduler loops
# ---------------------------------------------------------------------------------------------
class Feed:
    """Deterministic model outputs and noises (float32-representable float64 values)."""

    def __init__(self, seed, n=N_ELEM):
        self.rng = np.random.default_rng(seed)
        self.n = n

    def draw(self):
        v = np.zeros(N_ELEM)
        v[:self.n] = self.rng.standard_normal(self.n).astype(np.float32).astype(np.float64)
        return v


@contextlib.contextmanager
def patched_randn(module, queue):
    """Replaces module.randn_tensor by a feed that returns queue[0] (the current step's noise)."""
    orig = module.randn_tensor
    used = []

    def fake(shape, generator=None, device=None, dtype=None, layout=None, **kw):
        assert tuple(shape) == SHAPE, shape
        used.append(True)
        t = torch.from_numpy(queue[0].copy()).reshape(SHAPE)
        return t if dtype is None else t.to(dtype)

    module.randn_tensor = fake
    try:
        yield used
    finally:
        module.randn_tensor = orig


def to_t(a):
    return torch.from_numpy(np.asarray(a, dtype=np.float64).copy()).reshape(SHAPE)


def flat(t):
    return [float(v) for v in t.detach().to(torch.float64).reshape(-1).numpy()]


F32_KEYS = ("noise_init", "model_out", "noise")  # exact float32 values: shortest float32 digits
F64_KEYS = ("x_init", "model_in", "x", "t_model")  # references: 12 significant digits


def compact(case, n):
    """Keeps the first n elements of every array and shortens the decimal representations."""
    def f32s(a):
        return [float(str(np.float32(v))) for v in a[:n]]

    def f64s(a):
        return [float(f"{v:.12g}") for v in a[:n]]

    if not case["model_in"]:
        del case["model_in"]
    for k in F32_KEYS + F64_KEYS:
        if k not in case:
            continue
        v = case[k]
        conv = f32s if k in F32_KEYS else f64s
        if k == "t_model":
            case[k] = [float(f"{t:.15g}") for t in v]
        elif v and isinstance(v[0], list):
            case[k] = [conv(a) for a in v]
        else:
            case[k] = conv(v)
    return case


def run_loop(sched, feed, init_sigma, timesteps, step_fn, scale_fn=None, tmodel_fn=None):
    noise0 = feed.draw()
    x = to_t(noise0) * (init_sigma if not torch.is_tensor(init_sigma) else init_sigma.to(torch.float64))
    rec = {"init_noise_sigma": float(init_sigma), "noise_init": list(noise0), "x_init": flat(x),
           "t_model": [], "model_in": [], "model_out": [], "noise": [], "x": []}
    for i, t in enumerate(timesteps):
        mi = scale_fn(x, t) if scale_fn else x
        m = feed.draw()
        nz = feed.draw()
        rec["t_model"].append(float(tmodel_fn(t) if tmodel_fn else t))
        if scale_fn:  # omitted when the model input is the sample itself
            rec["model_in"].append(flat(mi))
        rec["model_out"].append(list(m))
        rec["noise"].append(list(nz))
        x = step_fn(i, t, to_t(m), x, nz)
        rec["x"].append(flat(x))
    return rec


def upcast(sched):
    """Keeps diffusers' float32 alphas_cumprod table but lets step() do its scalar arithmetic in
    float64: torch's CPU float32 sqrt is not correctly rounded (about 20% of values are 1 ulp
    off on AVX2 builds), which would add build-dependent noise of ~1e-6 over 50 steps."""
    sched.alphas_cumprod = sched.alphas_cumprod.to(torch.float64)
    if torch.is_tensor(getattr(sched, "final_alpha_cumprod", None)):
        sched.final_alpha_cumprod = sched.final_alpha_cumprod.to(torch.float64)
    return sched


def case_ddim(feed, steps, cfg, eta=0.0):
    sched = upcast(DDIMScheduler(**cfg))
    sched.set_timesteps(steps)

    def step(i, t, m, x, nz):
        kw = {"eta": eta}
        if eta > 0:
            kw["variance_noise"] = to_t(nz)
        return sched.step(m, t, x, **kw).prev_sample

    return run_loop(sched, feed, sched.init_noise_sigma, sched.timesteps, step)


def case_euler_a(feed, steps, cfg):
    sched = EulerAncestralDiscreteScheduler(**cfg)
    sched.set_timesteps(steps)
    queue = [None]

    def step(i, t, m, x, nz):
        queue[0] = nz
        return sched.step(m, t, x).prev_sample

    with patched_randn(m_ea, queue):
        return run_loop(sched, feed, sched.init_noise_sigma, sched.timesteps, step,
                        scale_fn=lambda x, t: sched.scale_model_input(x, t))


def case_lcm_like(cls, module, feed, steps, cfg, timesteps=None, step_kw=None):
    sched = upcast(cls(**cfg))
    if timesteps is not None:
        sched.set_timesteps(timesteps=timesteps)
    else:
        sched.set_timesteps(steps)
    queue = [None]

    def step(i, t, m, x, nz):
        queue[0] = nz
        return sched.step(m, t, x, **(step_kw or {})).prev_sample

    with patched_randn(module, queue):
        return run_loop(sched, feed, sched.init_noise_sigma, sched.timesteps, step)


def case_dmd2(feed, steps, cfg, timesteps):
    """DMD2 sampling as in tianweiy/DMD2: x0 from eps (get_x0_from_noise), DDPM add_noise to the
    next timestep; cross-checked against diffusers' LCMScheduler with the same timesteps."""
    ddpm = DDPMScheduler(**cfg)
    ac = ddpm.alphas_cumprod.to(torch.float64)  # float32 values, float64 arithmetic (see upcast)
    ts = list(timesteps)

    def step(i, t, m, x, nz):
        a = ac[t]
        x0 = (x - (1 - a) ** 0.5 * m) / a ** 0.5
        if i == len(ts) - 1:
            return x0
        return ddpm.add_noise(x0, to_t(nz), torch.tensor([ts[i + 1]]))

    rec = run_loop(ddpm, feed, 1.0, ts, step)
    # cross-check: the documented diffusers usage (LCMScheduler + custom timesteps)
    lcm_feed = Feed(0)
    lcm_feed.rng = None
    seq = [np.array(rec["noise_init"])]
    for k in range(len(ts)):
        seq += [np.array(rec["model_out"][k]), np.array(rec["noise"][k])]
    it = iter(seq)
    lcm_feed.draw = lambda: next(it)
    ref = case_lcm_like(LCMScheduler, m_lcm, lcm_feed, None, cfg, timesteps=ts)
    diff = max(float(np.max(np.abs(np.array(a) - np.array(b)) / (np.max(np.abs(np.array(b))) + 1e-30)))
               for a, b in zip(ref["x"], rec["x"]))
    assert diff < 1e-6, f"dmd2 vs LCMScheduler differ by {diff}"
    rec["lcm_scheduler_max_rel_diff"] = diff
    return rec


def case_flow(feed, steps, cfg, sigmas=None, mu=None, timesteps=None):
    sched = FlowMatchEulerDiscreteScheduler(**cfg)
    kw = {}
    if sigmas is not None:
        kw["sigmas"] = sigmas
    if mu is not None:
        kw["mu"] = mu
    if timesteps is not None:
        kw["timesteps"] = timesteps
    sched.set_timesteps(None if (sigmas is not None or timesteps is not None) else steps, **kw)
    queue = [None]

    def step(i, t, m, x, nz):
        queue[0] = nz
        return sched.step(m, t, x).prev_sample

    with patched_randn(m_flow, queue):
        return run_loop(sched, feed, 1.0, sched.timesteps, step)


def case_cm(feed, steps, cfg, timesteps=None):
    sched = CMStochasticIterativeScheduler(**cfg)
    if timesteps is not None:
        sched.set_timesteps(timesteps=timesteps)
    else:
        sched.set_timesteps(steps)
    queue = [None]

    def step(i, t, m, x, nz):
        queue[0] = nz
        return sched.step(m, t, x).prev_sample

    with patched_randn(m_cm, queue):
        return run_loop(sched, feed, sched.init_noise_sigma, sched.timesteps, step,
                        scale_fn=lambda x, t: sched.scale_model_input(x, t))


def case_scm(feed, steps, cfg, timesteps=None):
    """SANA-Sprint pipeline loop (pipeline_sana_sprint.py) around SCMScheduler."""
    sched = SCMScheduler(**cfg)
    if timesteps is not None:
        sched.set_timesteps(steps, timesteps=timesteps, max_timesteps=None, intermediate_timesteps=None)
    elif steps == 2:
        sched.set_timesteps(2)
    else:
        sched.set_timesteps(steps, intermediate_timesteps=None)
    sd = sched.config.sigma_data
    queue = [None]
    state = {}

    def scm_u(t):
        return torch.sin(t) / (torch.cos(t) + torch.sin(t))

    def model_in(x, t):
        u = scm_u(t).to(torch.float64)
        return x / sd * torch.sqrt(u ** 2 + (1 - u) ** 2)

    def step(i, t, m, x, nz):
        queue[0] = nz
        u = scm_u(t).to(torch.float64)
        lmi = model_in(x, t)
        f = ((1 - 2 * u) * lmi + (1 - 2 * u + 2 * u ** 2) * m) / torch.sqrt(u ** 2 + (1 - u) ** 2)
        f = f * sd
        prev, denoised = sched.step(f, t, x, return_dict=False)
        if i == len(ts) - 1:
            return denoised / sd  # the pipeline's output
        return prev

    ts = sched.timesteps[:-1]
    with patched_randn(m_scm, queue):
        rec = run_loop(sched, feed, sd, ts, step, scale_fn=model_in, tmodel_fn=scm_u)
    rec["init_noise_sigma"] = sd
    return rec


# ---------------------------------------------------------------------------------------------
# Cases: (table, case name, drt schedule, steps, drt options, diffusers config, runner)
# ---------------------------------------------------------------------------------------------
def cases():
    sd_ddim = dict(SD_BETAS, clip_sample=False)
    out = []

    def add(table, name, sched, steps, options, config, fn):
        out.append((table, name, sched, steps, options, config, fn))

    # flow-euler
    for n in (1, 2, 4):
        cfg = dict(shift=3.0)
        add("flow-euler", f"sd3_shift3_{n}", "flow-euler", n, "shift=3.0", cfg,
            lambda f, n=n, cfg=cfg: case_flow(f, n, cfg))
    for n in (1, 2, 4):
        cfg = dict(use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15, base_image_seq_len=256,
                   max_image_seq_len=4096)
        m = (1.15 - 0.5) / (4096 - 256)  # diffusers' calculate_shift(4096) as the Flux pipeline calls it
        mu = 4096 * m + (0.5 - m * 256)
        sig = list(np.linspace(1.0, 1 / n, n))
        add("flow-euler", f"flux_dynamic_seq4096_{n}", "flow-euler", n, "spacing=flux,image_seq_len=4096", cfg,
            lambda f, n=n, cfg=cfg, mu=mu, sig=sig: case_flow(f, n, cfg, sigmas=sig, mu=mu))
    cfg = dict(use_dynamic_shifting=True)
    add("flow-euler", "dynamic_mu0.8_linspace_4", "flow-euler", 4, "mu=0.8", cfg,
        lambda f, cfg=cfg: case_flow(f, 4, cfg, mu=0.8))
    cfg = dict(use_dynamic_shifting=True, time_shift_type="linear")
    add("flow-euler", "dynamic_linear_mu2_flux_2", "flow-euler", 2, "mu=2,shift_type=linear,spacing=flux", cfg,
        lambda f, cfg=cfg: case_flow(f, 2, cfg, mu=2.0, sigmas=list(np.linspace(1.0, 1 / 2, 2))))
    cfg = dict(shift=1.0)
    add("flow-euler", "schnell_flux_4", "flow-euler", 4, "spacing=flux", cfg,
        lambda f, cfg=cfg: case_flow(f, 4, cfg, sigmas=list(np.linspace(1.0, 1 / 4, 4))))
    cfg = dict(shift=3.0)
    add("flow-euler", "custom_sigmas_shift3_4", "flow-euler", 0, "shift=3,sigmas=1.0/0.75/0.5/0.25", cfg,
        lambda f, cfg=cfg: case_flow(f, 4, cfg, sigmas=[1.0, 0.75, 0.5, 0.25]))
    cfg = dict(shift=3.0)
    add("flow-euler", "custom_timesteps_shift3_3", "flow-euler", 3, "shift=3,timesteps=1000:750:500", cfg,
        lambda f, cfg=cfg: case_flow(f, 3, cfg, timesteps=[1000.0, 750.0, 500.0]))
    cfg = dict(shift=3.0, stochastic_sampling=True)
    add("flow-euler", "stochastic_shift3_4", "flow-euler", 4, "shift=3.0,stochastic=1", cfg,
        lambda f, cfg=cfg: case_flow(f, 4, cfg))
    cfg = dict(shift=3.0)
    add("flow-euler", "sd3_shift3_28", "flow-euler", 28, "shift=3.0", cfg,
        lambda f, cfg=cfg: case_flow(f, 28, cfg))

    # ddim
    def ddim(name, n, options, eta=0.0, **kw):
        cfg = dict(sd_ddim, **kw)
        add("ddim", name, "ddim", n, options, cfg, lambda f: case_ddim(f, n, cfg, eta))

    ddim("eps_leading_1", 1, "")
    ddim("eps_leading_2", 2, "")
    ddim("eps_leading_4", 4, "")
    ddim("eps_leading_50_sd15", 50, "steps_offset=1,set_alpha_to_one=0", steps_offset=1, set_alpha_to_one=False)
    ddim("v_trailing_4", 4, "prediction=v,spacing=trailing", prediction_type="v_prediction",
         timestep_spacing="trailing")
    ddim("x0_linspace_4", 4, "prediction=x0,spacing=linspace", prediction_type="sample", timestep_spacing="linspace")
    ddim("eps_trailing_eta0.5_4", 4, "spacing=trailing,eta=0.5", eta=0.5, timestep_spacing="trailing")
    ddim("eps_leading_eta1_50", 50, "eta=1", eta=1.0)
    ddim("linear_betas_eps_2", 2, "beta_schedule=linear,beta_start=0.0001,beta_end=0.02",
         beta_schedule="linear", beta_start=0.0001, beta_end=0.02)
    ddim("v_trailing_50", 50, "prediction=v,spacing=trailing", prediction_type="v_prediction",
         timestep_spacing="trailing")

    # euler-a (SD-Turbo style)
    def ea(name, n, options, **kw):
        cfg = dict(SD_BETAS, timestep_spacing="trailing")
        cfg.update(kw)
        add("euler-a", name, "euler-a", n, options, cfg, lambda f: case_euler_a(f, n, cfg))

    ea("turbo_trailing_1", 1, "")
    ea("turbo_trailing_2", 2, "")
    ea("turbo_trailing_4", 4, "")
    ea("v_trailing_4", 4, "prediction=v", prediction_type="v_prediction")
    ea("leading_offset1_4", 4, "spacing=leading,steps_offset=1", timestep_spacing="leading", steps_offset=1)
    ea("linspace_3", 3, "spacing=linspace", timestep_spacing="linspace")
    ea("linspace_7", 7, "spacing=linspace", timestep_spacing="linspace")

    # lcm
    for n in (1, 2, 4, 8):
        add("lcm", f"eps_{n}", "lcm", n, "", dict(SD_BETAS),
            lambda f, n=n: case_lcm_like(LCMScheduler, m_lcm, f, n, dict(SD_BETAS)))
    cfg = dict(SD_BETAS, prediction_type="v_prediction")
    add("lcm", "v_4", "lcm", 4, "prediction=v", cfg, lambda f, cfg=cfg: case_lcm_like(LCMScheduler, m_lcm, f, 4, cfg))
    add("lcm", "custom_timesteps_3", "lcm", 3, "timesteps=999/499/259", dict(SD_BETAS),
        lambda f: case_lcm_like(LCMScheduler, m_lcm, f, None, dict(SD_BETAS), timesteps=[999, 499, 259]))

    # dmd2
    add("dmd2", "sdxl_4", "dmd2", 4, "", dict(SD_BETAS), lambda f: case_dmd2(f, 4, dict(SD_BETAS), [999, 749, 499, 249]))
    add("dmd2", "one_step_999", "dmd2", 1, "", dict(SD_BETAS), lambda f: case_dmd2(f, 1, dict(SD_BETAS), [999]))
    add("dmd2", "two_step", "dmd2", 2, "", dict(SD_BETAS), lambda f: case_dmd2(f, 2, dict(SD_BETAS), [999, 499]))
    add("dmd2", "sdxl_one_step_399", "dmd2", 1, "timesteps=399", dict(SD_BETAS),
        lambda f: case_dmd2(f, 1, dict(SD_BETAS), [399]))

    # tcd
    for n in (1, 2, 4):
        add("tcd", f"gamma0.3_{n}", "tcd", n, "", dict(SD_BETAS),
            lambda f, n=n: case_lcm_like(TCDScheduler, m_tcd, f, n, dict(SD_BETAS), step_kw={"eta": 0.3}))
    for g in (0.0, 1.0, 0.5):
        add("tcd", f"gamma{g}_4", "tcd", 4, f"gamma={g}", dict(SD_BETAS),
            lambda f, g=g: case_lcm_like(TCDScheduler, m_tcd, f, 4, dict(SD_BETAS), step_kw={"eta": g}))
    cfg = dict(SD_BETAS, prediction_type="v_prediction")
    add("tcd", "v_gamma0.3_8", "tcd", 8, "prediction=v", cfg,
        lambda f, cfg=cfg: case_lcm_like(TCDScheduler, m_tcd, f, 8, cfg, step_kw={"eta": 0.3}))

    # cm
    cm_cfg = dict(sigma_min=0.002, sigma_max=80.0, sigma_data=0.5, rho=7.0, num_train_timesteps=40,
                  clip_denoised=False)
    for n in (1, 2, 4):
        add("cm", f"karras_{n}", "cm", n, "", cm_cfg, lambda f, n=n: case_cm(f, n, cm_cfg))
    add("cm", "imagenet64_22_0", "cm", 2, "timesteps=22/0", cm_cfg, lambda f: case_cm(f, None, cm_cfg, [22, 0]))
    cfg = dict(cm_cfg, num_train_timesteps=151, sigma_max=40.0, s_noise=0.9)
    add("cm", "train151_smax40_snoise0.9_3", "cm", 3, "train_steps=151,sigma_max=40,s_noise=0.9", cfg,
        lambda f, cfg=cfg: case_cm(f, 3, cfg))

    # scm
    for n in (1, 2, 4):
        add("scm", f"sana_sprint_{n}", "scm", n, "", {}, lambda f, n=n: case_scm(f, n, {}))
    add("scm", "custom_3", "scm", 3, "timesteps=1.5708/1.2/0.8/0", {},
        lambda f: case_scm(f, 3, {}, timesteps=[1.5708, 1.2, 0.8, 0.0]))
    add("scm", "sigma_data1_2", "scm", 2, "sigma_data=1.0", {"sigma_data": 1.0},
        lambda f: case_scm(f, 2, {"sigma_data": 1.0}))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "tables"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.set_default_dtype(torch.float32)
    tables = {}
    for idx, (table, name, sched, steps, options, config, fn) in enumerate(cases()):
        n = 8 if (steps or 0) > 20 else N_ELEM  # the padding elements stay zero
        rec = fn(Feed(1000 + idx, n))
        case = {"name": name, "schedule": sched, "steps": steps, "options": options, "diffusers_config": config}
        case.update(rec)
        tables.setdefault(table, []).append(compact(case, n))
    meta = {"generator": "tests/sampler/gen_sampler_tables.py", "diffusers": diffusers.__version__,
            "torch": torch.__version__, "numpy": np.__version__}
    for table, cs in tables.items():
        path = os.path.join(args.out, f"{table}.json")
        with open(path, "w") as f:
            json.dump(dict(meta, cases=cs), f, separators=(",", ":"))
            f.write("\n")
        print(f"{path}: {len(cs)} cases")
    path = os.path.join(args.out, "philox.json")
    with open(path, "w") as f:
        json.dump(dict(meta, **philox_tables()), f, separators=(",", ":"))
        f.write("\n")
    print(f"{path}: Philox KAT and normals")


if __name__ == "__main__":
    main()
