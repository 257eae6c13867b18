#!/usr/bin/env python3
"""End-to-end references for `drt generate`: diffusers' scheduler loops around onnxruntime.

For each case the DiT student fixture (tests/models/fixtures/dit_student_op17, batch 1) is run
by onnxruntime inside the sampling loop of the diffusers scheduler named by the schedule,
configured like its pipeline; the initial and per-step noises are the Philox normals of
runtime/philox.h (seed SEED, stream 0 for x_T and k+1 for step k, computed by the Python port
in gen_sampler_tables.py) so that `drt generate --seed SEED` must reproduce the final latent.
Writes tests/sampler/e2e/<case>.npy and cases.json. Needs torch, diffusers, onnxruntime.

Usage: python3 tests/sampler/gen_e2e_refs.py
"""
import json
import os
import sys

import numpy as np
import onnxruntime as ort
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import gen_sampler_tables as gst  # noqa: E402  (Philox port and diffusers imports)
from diffusers import (CMStochasticIterativeScheduler, DDIMScheduler, DDPMScheduler,  # noqa: E402
                       EulerAncestralDiscreteScheduler, FlowMatchEulerDiscreteScheduler, LCMScheduler,
                       TCDScheduler)

SEED = 20261126
FX = os.path.join(HERE, "..", "models", "fixtures", "dit_student_op17")
SHAPE = (1, 4, 16, 16)
N = int(np.prod(SHAPE))


def noise(stream):
    return np.array(gst.philox_normal(SEED, stream, 0, N), dtype=np.float32).reshape(SHAPE)


class Model:
    def __init__(self):
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        self.sess = ort.InferenceSession(os.path.join(FX, "model.onnx"), so, providers=["CPUExecutionProvider"])
        self.ehs = np.load(os.path.join(FX, "inputs", "encoder_hidden_states.npy"))[:1]
        self.calls = 0

    def __call__(self, x, t):
        self.calls += 1
        out = self.sess.run(None, {"sample": np.asarray(x, np.float32).reshape(SHAPE),
                                   "timestep": np.array([float(t)], np.float32),
                                   "encoder_hidden_states": self.ehs})[0]
        return torch.from_numpy(out.astype(np.float64))


def patched(module, stream_box):
    """diffusers' randn_tensor inside `module` returns the Philox noise of the current step."""
    def fake(shape, generator=None, device=None, dtype=None, layout=None, **kw):
        t = torch.from_numpy(noise(stream_box[0]).astype(np.float64)).reshape(shape)
        return t if dtype is None else t.to(dtype)
    module.randn_tensor = fake


def loop(sched, model, timesteps, init_sigma, scale=None, step_kw=None, module=None, tmodel=None):
    box = [0]
    if module is not None:
        patched(module, box)
    x = torch.from_numpy(noise(0).astype(np.float64)) * float(init_sigma)
    for k, t in enumerate(timesteps):
        xin = scale(x, t) if scale else x
        m = model(xin.numpy(), tmodel(t) if tmodel else t)
        box[0] = k + 1
        kw = dict(step_kw or {})
        if "variance_noise" in kw:
            kw["variance_noise"] = torch.from_numpy(noise(k + 1).astype(np.float64))
        x = sched.step(m, t, x, **kw).prev_sample
    return x.numpy().astype(np.float32)


def main():
    model = Model()
    sd = dict(gst.SD_BETAS)
    cases = []

    def add(name, schedule, steps, params, fn):
        out = fn()
        np.save(os.path.join(HERE, "e2e", name + ".npy"), out)
        cases.append({"name": name, "schedule": schedule, "steps": steps, "params": params, "seed": SEED})
        print(f"{name}: |x| = {float(np.abs(out).mean()):.4f}")

    def ddim(eta, spacing, n):
        s = gst.upcast(DDIMScheduler(**sd, clip_sample=False, timestep_spacing=spacing))
        s.set_timesteps(n)
        kw = {"eta": eta}
        if eta > 0:
            kw["variance_noise"] = True
        return loop(s, model, s.timesteps, s.init_noise_sigma, step_kw=kw)

    add("ddim_eps_leading_4", "ddim", 4, "", lambda: ddim(0.0, "leading", 4))
    add("ddim_eta0.5_trailing_4", "ddim", 4, "spacing=trailing,eta=0.5", lambda: ddim(0.5, "trailing", 4))

    def euler_a(n):
        s = EulerAncestralDiscreteScheduler(**sd, timestep_spacing="trailing")
        s.set_timesteps(n)
        return loop(s, model, s.timesteps, s.init_noise_sigma, scale=lambda x, t: s.scale_model_input(x, t),
                    module=gst.m_ea)

    add("euler-a_1", "euler-a", 1, "", lambda: euler_a(1))
    add("euler-a_4", "euler-a", 4, "", lambda: euler_a(4))

    def lcm(n):
        s = gst.upcast(LCMScheduler(**sd))
        s.set_timesteps(n)
        return loop(s, model, s.timesteps, s.init_noise_sigma, module=gst.m_lcm)

    add("lcm_4", "lcm", 4, "", lambda: lcm(4))

    def tcd(n):
        s = gst.upcast(TCDScheduler(**sd))
        s.set_timesteps(n)
        return loop(s, model, s.timesteps, s.init_noise_sigma, module=gst.m_tcd, step_kw={"eta": 0.3})

    add("tcd_4", "tcd", 4, "", lambda: tcd(4))

    def dmd2(ts):
        ddpm = DDPMScheduler(**sd)
        ac = ddpm.alphas_cumprod.to(torch.float64)
        x = torch.from_numpy(noise(0).astype(np.float64))
        for k, t in enumerate(ts):
            m = model(x.numpy(), t)
            a = ac[t]
            x0 = (x - (1 - a) ** 0.5 * m) / a ** 0.5
            x = x0 if k == len(ts) - 1 else ddpm.add_noise(x0, torch.from_numpy(noise(k + 1).astype(np.float64)),
                                                          torch.tensor([ts[k + 1]]))
        return x.numpy().astype(np.float32)

    add("dmd2_4", "dmd2", 4, "", lambda: dmd2([999, 749, 499, 249]))
    add("dmd2_1", "dmd2", 1, "", lambda: dmd2([999]))

    def flow(n, shift):
        s = FlowMatchEulerDiscreteScheduler(shift=shift)
        s.set_timesteps(n)
        return loop(s, model, s.timesteps, 1.0, module=gst.m_flow)

    add("flow-euler_shift3_4", "flow-euler", 4, "shift=3.0", lambda: flow(4, 3.0))
    add("flow-euler_shift1_2", "flow-euler", 2, "", lambda: flow(2, 1.0))

    def cm(n):
        s = CMStochasticIterativeScheduler()
        s.set_timesteps(n)
        return loop(s, model, s.timesteps, s.init_noise_sigma, scale=lambda x, t: s.scale_model_input(x, t),
                    module=gst.m_cm)

    add("cm_2", "cm", 2, "", lambda: cm(2))
    with open(os.path.join(HERE, "e2e", "cases.json"), "w") as f:
        json.dump({"fixture": "dit_student_op17", "shape": list(SHAPE), "cases": cases}, f, indent=1)
    print(f"{len(cases)} cases, {model.calls} onnxruntime evaluations")


if __name__ == "__main__":
    main()
