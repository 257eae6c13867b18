#!/usr/bin/env python3
"""CFG folding and step-invariant hoisting on the model fixtures (ctest 'cfg').

For dit_teacher (exported with a fixed batch of 2), dit_student, unet and diffusers_unet2dcond
(dynamic batch, compiled at batch 1 and 2) this checks that

  * one evaluation of a plan compiled with `--cfg-scale W --cfg-uncond encoder_hidden_states=zeros`
    equals u + W (c - u), where c and u are two separate `drt run`s of the unfolded ONNX model
    with the conditioning and with zeros (relative L2 <= 1e-5), also with an unconditional
    value from a .npy file (batch 1, broadcast);
  * `drt run --cfg-scale W2` changes the scale without recompiling;
  * the guidance modes match numpy references of diffusers' formulas: rescale (rescale_noise_cfg),
    cfgpp (guided and unconditional predictions), apg (normalized_guidance with a momentum buffer);
  * `drt generate` performs one network evaluation per step (printed NFE == steps), and the
    whole generation equals a sampling loop written here that calls the unfolded model twice
    per step (flow-euler), CFG++ re-noising with the unconditional prediction, and APG momentum
    carried across steps;
  * generation outputs with hoisting on and off agree (<= 1e-6), with the per-step tables in use
    (the compile-time schedule) and without (another step count);
  * `drt inspect --json` reports "fused" with cfg true and hoisted FLOPs, and hides the internal
    inputs; `drt bench --teacher` runs the folded teacher at one pass per step.

Prints one line per check and `N passed, M failed`; exits 1 on any failure.
Usage: python3 tests/models/test_cfg.py --drt build/bin/drt [--keep]
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "fixtures")
W = 4.5
TOL = 1e-5
HOIST_TOL = 1e-6


class Failure(Exception):
    pass


def rel_l2(out, ref):
    out = np.asarray(out, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    n = float(np.linalg.norm(ref))
    d = float(np.linalg.norm(out - ref))
    return d / n if n > 0 else d


class Ctx:
    def __init__(self, drt, tmp):
        self.drt = drt
        self.tmp = tmp
        self.passed = 0
        self.failed = 0
        self.seq = 0

    def path(self, name):
        self.seq += 1
        return os.path.join(self.tmp, "%03d_%s" % (self.seq, name))

    def run(self, *args, expect_rc=0):
        p = subprocess.run([self.drt] + [str(a) for a in args], capture_output=True, text=True, timeout=600)
        if p.returncode != expect_rc:
            raise Failure("drt %s exited %d: %s" % (" ".join(str(a) for a in args[:2]), p.returncode,
                                                   (p.stderr.strip().splitlines() or [""])[-1][:300]))
        return p.stdout + p.stderr

    def check(self, name, fn):
        try:
            msg = fn()
            self.passed += 1
            print("ok    %-58s %s" % (name, msg or ""))
        except Failure as e:
            self.failed += 1
            print("FAIL  %-58s %s" % (name, e))
        except Exception as e:  # noqa: BLE001 - report anything as a failure of this check
            self.failed += 1
            print("FAIL  %-58s %s: %s" % (name, type(e).__name__, e))

    def save(self, name, arr):
        p = self.path(name + ".npy")
        np.save(p, arr)
        return p

    def eval_plan_or_model(self, model, inputs, extra=(), outputs=("out",)):
        """One `drt run`; returns the named outputs."""
        d = self.path("out")
        os.mkdir(d)
        args = [model] + ["--input=%s=%s" % kv for kv in inputs.items()] + list(extra) + ["--output-dir", d]
        self.run("run", *args)
        return [np.load(os.path.join(d, re.sub(r"[^A-Za-z0-9._-]", "_", o) + ".npy")) for o in outputs]


def expect(err, tol, what="rel L2"):
    if not err <= tol:
        raise Failure("%s %.3g > %.1g" % (what, err, tol))
    return "%s %.2e" % (what, err)


# ---- numpy references of the guidance modes (diffusers' formulas) ---------------------------
def ref_standard(c, u, w):
    return u + w * (c - u)


def ref_rescale(c, u, w, phi):
    g = u + w * (c - u)
    ax = tuple(range(1, c.ndim))
    std_c = c.std(axis=ax, ddof=1, keepdims=True)
    std_g = g.std(axis=ax, ddof=1, keepdims=True)
    return phi * g * (std_c / std_g) + (1 - phi) * g


def ref_apg(c, u, w, eta, r, beta, state):
    ax = tuple(range(1, c.ndim))
    diff = (c - u) + beta * state
    new_state = diff
    if r > 0:
        norm = np.sqrt((diff * diff).sum(axis=ax, keepdims=True))
        diff = diff * np.minimum(1.0, r / norm)
    v1 = c / np.maximum(np.sqrt((c * c).sum(axis=ax, keepdims=True)), 1e-12)
    par = (diff * v1).sum(axis=ax, keepdims=True) * v1
    orth = diff - par
    return u + w * (orth + eta * par), new_state


# ---- fixtures -------------------------------------------------------------------------------
class Case:
    def __init__(self, fixture, data, batch):
        self.fixture = fixture
        self.dir = os.path.join(FIXTURES, fixture)
        self.model = os.path.join(self.dir, "model.onnx")
        self.meta = json.load(open(os.path.join(self.dir, "meta.json")))
        self.dynamic = bool(self.meta.get("dynamic_axes"))
        self.data = data
        self.batch = batch
        self.inputs = {i["name"]: os.path.join(self.dir, data, i["file"]) for i in self.meta["inputs"]}
        self.label = "%s/%s" % (fixture, data)

    def shape_args(self):
        return ["--shape", "batch=%d" % self.batch] if self.dynamic else []


def cond_uncond(ctx, case, uncond_ehs=None):
    """Two separate evaluations of the unfolded ONNX model."""
    ins = dict(case.inputs)
    (c,) = ctx.eval_plan_or_model(case.model, ins)
    ehs = np.load(ins["encoder_hidden_states"])
    u_val = np.zeros_like(ehs) if uncond_ehs is None else np.broadcast_to(uncond_ehs, ehs.shape)
    ins["encoder_hidden_states"] = ctx.save("uncond_ehs", np.ascontiguousarray(u_val))
    (u,) = ctx.eval_plan_or_model(case.model, ins)
    return c.astype(np.float64), u.astype(np.float64)


def compile_plan(ctx, case, name, *extra):
    plan = ctx.path(name + ".plan")
    out = ctx.run("compile", case.model, "-o", plan, *case.shape_args(), *extra)
    return plan, out


def cfg_args(mode=None, uncond="zeros"):
    a = ["--cfg-scale", str(W), "--cfg-uncond", "encoder_hidden_states=%s" % uncond]
    if mode:
        a += ["--cfg-mode", mode]
    return a


def check_fold(ctx, case, cu):
    c, u = cu
    plan, _ = compile_plan(ctx, case, "folded", *cfg_args())
    (f,) = ctx.eval_plan_or_model(plan, case.inputs)
    msg = expect(rel_l2(f, ref_standard(c, u, W)), TOL)
    (f2,) = ctx.eval_plan_or_model(plan, case.inputs, extra=["--cfg-scale", "1.5"])
    msg += ", --cfg-scale 1.5: " + expect(rel_l2(f2, ref_standard(c, u, 1.5)), TOL)
    info = json.loads(ctx.run("inspect", plan, "--json"))
    fused = info.get("fused", {})
    if fused.get("cfg") is not True or not fused.get("hoisted_flops", 0) > 0:
        raise Failure("inspect --json fused = %s" % fused)
    if info.get("guidance", {}).get("default_scale") != W:
        raise Failure("inspect --json guidance = %s" % info.get("guidance"))
    roles = [i["role"] for i in info["inputs"]]
    if "hoisted" in roles or roles.count("guidance_scale") != 1:
        raise Failure("inspect --json input roles %s" % roles)
    return msg + ", hoisted %.3g FLOPs" % fused["hoisted_flops"]


def check_uncond_file(ctx, case):
    rng = np.random.default_rng(5)
    ehs = np.load(case.inputs["encoder_hidden_states"])
    uval = rng.standard_normal((1,) + ehs.shape[1:]).astype(np.float32)
    c, u = cond_uncond(ctx, case, uncond_ehs=uval)
    plan, _ = compile_plan(ctx, case, "folded_file", *cfg_args(uncond=ctx.save("uncond_value", uval)))
    (f,) = ctx.eval_plan_or_model(plan, case.inputs)
    return expect(rel_l2(f, ref_standard(c, u, W)), TOL)


def check_modes(ctx, case, cu):
    c, u = cu
    msgs = []
    plan, _ = compile_plan(ctx, case, "rescale", *cfg_args("rescale:0.7"))
    (f,) = ctx.eval_plan_or_model(plan, case.inputs)
    msgs.append("rescale " + expect(rel_l2(f, ref_rescale(c, u, W, 0.7)), TOL, ""))
    plan, _ = compile_plan(ctx, case, "cfgpp", *cfg_args("cfgpp"))
    f, fu = ctx.eval_plan_or_model(plan, case.inputs, outputs=("out", "out_uncond"))
    msgs.append("cfgpp " + expect(max(rel_l2(f, ref_standard(c, u, W)), rel_l2(fu, u)), TOL, ""))
    plan, _ = compile_plan(ctx, case, "apg", *cfg_args("apg:0.5,3.0,-0.5"))
    f, st = ctx.eval_plan_or_model(plan, case.inputs, outputs=("out", "cfg_momentum_out"))
    ry, rs = ref_apg(c, u, W, 0.5, 3.0, -0.5, np.zeros_like(c))
    msgs.append("apg " + expect(max(rel_l2(f, ry), rel_l2(st, rs)), TOL, ""))
    # an explicit momentum state
    state = np.random.default_rng(9).standard_normal(c.shape).astype(np.float32)
    ins = dict(case.inputs, cfg_momentum=ctx.save("state", state))
    f, st = ctx.eval_plan_or_model(plan, ins, outputs=("out", "cfg_momentum_out"))
    ry, rs = ref_apg(c, u, W, 0.5, 3.0, -0.5, state.astype(np.float64))
    msgs.append("apg+state " + expect(max(rel_l2(f, ry), rel_l2(st, rs)), TOL, ""))
    return ", ".join(msgs)


# ---- generation -----------------------------------------------------------------------------
def generate(ctx, plan, case, noise, *extra):
    out = ctx.path("gen.npy")
    text = ctx.run("generate", plan, "--input", "encoder_hidden_states=%s" % case.inputs["encoder_hidden_states"],
                   "--noise", noise, "-o", out, *extra)
    m = re.search(r"(\d+) network evaluations", text)
    if not m:
        raise Failure("generate printed no NFE: %s" % text.strip()[:200])
    return np.load(out).astype(np.float64), int(m.group(1))


def flow_sigmas(ctx, plan):
    info = json.loads(ctx.run("inspect", plan, "--json"))
    ts = info["schedule"]["timesteps"]
    return [t / 1000.0 for t in ts] + [0.0], ts


def manual_loop(ctx, case, noise, ts, sigmas, evaluate):
    """flow-euler: x' = (1 - s') x0 + s' eps with x0 = x - s v, eps = x + (1 - s) v; `evaluate`
    returns (v for x0, v for eps) at (x, t)."""
    x = np.load(noise).astype(np.float32)
    tshape = np.load(case.inputs["timestep"]).shape
    for k, t in enumerate(ts):
        s, s2 = sigmas[k], sigmas[k + 1]
        ins = dict(case.inputs, sample=ctx.save("x", x.astype(np.float32)),
                   timestep=ctx.save("t", np.full(tshape, t, dtype=np.float32)))
        vg, vu = evaluate(ins)
        x0 = x.astype(np.float64) - s * vg
        eps = x.astype(np.float64) + (1 - s) * vu
        x = ((1 - s2) * x0 + s2 * eps).astype(np.float32)
    return x.astype(np.float64)


def check_generation(ctx, case, steps=3):
    lat = np.load(case.inputs["sample"])
    noise = ctx.save("noise", np.random.default_rng(3).standard_normal(lat.shape).astype(np.float32))
    sched = ["--schedule", "flow-euler", "--steps", str(steps)]
    plan, _ = compile_plan(ctx, case, "gen", *cfg_args(), *sched)
    plan_nh, _ = compile_plan(ctx, case, "gen_nohoist", *cfg_args(), *sched, "--disable-pass", "hoist")
    info = json.loads(ctx.run("inspect", plan, "--json"))
    kinds = sorted((s["kind"], s["table_steps"]) for s in info["stages"])
    if ("step", steps) not in kinds or not any(k == "prologue" for k, _ in kinds):
        raise Failure("expected a prologue and a step stage with %d table rows, got %s" % (steps, kinds))
    x, nfe = generate(ctx, plan, case, noise)
    if nfe != steps:
        raise Failure("%d network evaluations for %d steps" % (nfe, steps))
    log = ctx.run("generate", plan, "--input", "encoder_hidden_states=%s" % case.inputs["encoder_hidden_states"],
                  "--noise", noise, "-o", ctx.path("g.npy"), "-v")
    if "of %d steps from the plan's tables and 0 computed" % steps not in log:
        raise Failure("the step tables were not used: %s" % log.strip()[-300:])
    x_nh, nfe_nh = generate(ctx, plan_nh, case, noise)
    msgs = ["NFE %d for %d steps" % (nfe, steps), "hoist on/off " + expect(rel_l2(x, x_nh), HOIST_TOL, "")]
    # timesteps the tables were not computed for (--timestep-scale): the step stage runs
    other = ["--timestep-scale", "1.5"]
    y, nfe2 = generate(ctx, plan, case, noise, *other)
    log = ctx.run("generate", plan, "--input", "encoder_hidden_states=%s" % case.inputs["encoder_hidden_states"],
                  "--noise", noise, "-o", ctx.path("g.npy"), "-v", *other)
    if "from the plan's tables and %d computed" % steps not in log:
        raise Failure("the step stage did not run: %s" % log.strip()[-300:])
    y_nh, _ = generate(ctx, plan_nh, case, noise, *other)
    if nfe2 != steps:
        raise Failure("%d network evaluations for %d steps" % (nfe2, steps))
    msgs.append("untabled " + expect(rel_l2(y, y_nh), HOIST_TOL, ""))
    # the sampling loop by hand: two separate evaluations of the unfolded model per step
    sigmas, ts = flow_sigmas(ctx, plan)

    def two_evals(ins):
        (c,) = ctx.eval_plan_or_model(case.model, ins)
        ehs = np.load(ins["encoder_hidden_states"])
        (u,) = ctx.eval_plan_or_model(case.model, dict(ins, encoder_hidden_states=ctx.save("z", np.zeros_like(ehs))))
        g = ref_standard(c.astype(np.float64), u.astype(np.float64), W)
        return g, g

    ref = manual_loop(ctx, case, noise, ts, sigmas, two_evals)
    msgs.append("vs 2 evals/step " + expect(rel_l2(x, ref), TOL, ""))
    return ", ".join(msgs)


def check_generation_modes(ctx, case, steps=6):
    lat = np.load(case.inputs["sample"])
    noise = ctx.save("noise", np.random.default_rng(4).standard_normal(lat.shape).astype(np.float32))
    sched = ["--schedule", "flow-euler", "--steps", str(steps)]
    msgs = []
    # CFG++: x0 from the guided prediction, eps from the unconditional one
    plan, _ = compile_plan(ctx, case, "gen_cfgpp", *cfg_args("cfgpp"), *sched)
    x, nfe = generate(ctx, plan, case, noise)
    sigmas, ts = flow_sigmas(ctx, plan)

    def cfgpp_eval(ins):
        g, uu = ctx.eval_plan_or_model(plan, ins, outputs=("out", "out_uncond"))
        return g.astype(np.float64), uu.astype(np.float64)

    ref = manual_loop(ctx, case, noise, ts, sigmas, cfgpp_eval)
    msgs.append("cfgpp " + expect(rel_l2(x, ref), TOL, ""))
    # the CFG++ effect itself (its difference to standard guidance) must match too
    plan_std, _ = compile_plan(ctx, case, "gen_std", *cfg_args(), *sched)
    x_std, _ = generate(ctx, plan_std, case, noise)

    def std_eval(ins):
        (g,) = ctx.eval_plan_or_model(plan_std, ins)
        return g.astype(np.float64), g.astype(np.float64)

    ref_std = manual_loop(ctx, case, noise, ts, sigmas, std_eval)
    effect = rel_l2(x - x_std, ref - ref_std)
    msgs.append("cfgpp effect (%.1e of the result) " % rel_l2(x, x_std) + expect(effect, 1e-2, ""))
    # APG: the momentum carries across steps and restarts per generation
    plan, _ = compile_plan(ctx, case, "gen_apg", *cfg_args("apg:0.5,3.0,-0.5"), *sched)
    x, nfe = generate(ctx, plan, case, noise)
    state = [np.zeros(lat.shape, dtype=np.float32)]

    def apg_eval(ins):
        g, st = ctx.eval_plan_or_model(plan, dict(ins, cfg_momentum=ctx.save("m", state[0])),
                                       outputs=("out", "cfg_momentum_out"))
        state[0] = st
        return g.astype(np.float64), g.astype(np.float64)

    ref = manual_loop(ctx, case, noise, ts, sigmas, apg_eval)
    msgs.append("apg momentum " + expect(rel_l2(x, ref), TOL, ""))
    return ", ".join(msgs) + " (NFE %d)" % nfe


def check_bench(ctx, teacher_case):
    plan, _ = compile_plan(ctx, teacher_case, "bench_teacher", *cfg_args(), "--schedule", "flow-euler", "--steps", "2")
    text = ctx.run("bench", plan, "--teacher", plan, "--steps", "1", "--teacher-steps", "2", "--iterations", "1",
                   "--warmup", "0", "--input", "encoder_hidden_states=%s" % teacher_case.inputs["encoder_hidden_states"],
                   "--json")
    js = json.loads(text[text.index("{"):text.rindex("}") + 1])
    rows = [r for r in js["rows"] if r["model"] == "teacher" and r["steps"] == 2]
    if not rows or not rows[0]["cfg"] or rows[0]["nfe"] != 2 or rows[0]["forward_passes"] != 2:
        raise Failure("teacher rows %s" % rows)
    return "teacher 2-step: NFE %d, %d forward passes" % (rows[0]["nfe"], rows[0]["forward_passes"])


def check_errors(ctx, case):
    out = ctx.run("compile", case.model, "-o", ctx.path("x.plan"), *case.shape_args(), "--cfg-scale", "3",
                  "--cfg-uncond", "nope=zeros", expect_rc=2)
    if "no such input" not in out:
        raise Failure("unknown --cfg-uncond input: %s" % out.strip()[:200])
    out = ctx.run("compile", case.model, "-o", ctx.path("x.plan"), *case.shape_args(), "--cfg-scale", "3",
                  expect_rc=1)
    if "--cfg-uncond" not in out:
        raise Failure("missing --cfg-uncond: %s" % out.strip()[:200])
    out = ctx.run("compile", case.model, "-o", ctx.path("x.plan"), *case.shape_args(), "--cfg-scale", "3",
                  "--cfg-uncond", "encoder_hidden_states=zeros", "--cfg-mode", "apg:1", expect_rc=1)
    if "apg" not in out:
        raise Failure("bad --cfg-mode: %s" % out.strip()[:200])
    plain, _ = compile_plan(ctx, case, "plain")
    out = ctx.run("run", plain, "--cfg-scale", "2", *["--input=%s=%s" % kv for kv in case.inputs.items()],
                  expect_rc=2)
    if "classifier-free guidance" not in out:
        raise Failure("--cfg-scale on a plan without guidance: %s" % out.strip()[:200])
    out = ctx.run("compile", case.model, "-o", ctx.path("x.plan"), *case.shape_args(), "--invariant", "sample",
                  expect_rc=2)
    if "change every step" not in out:
        raise Failure("--invariant on the latent: %s" % out.strip()[:200])
    # explicit invariant inputs: the conditioning alone gives one prologue (no schedule: no step stage)
    plan, text = compile_plan(ctx, case, "inv", *cfg_args(), "--invariant", "encoder_hidden_states")
    info = json.loads(ctx.run("inspect", plan, "--json"))
    if [s["kind"] for s in info["stages"]] != ["prologue"]:
        raise Failure("--invariant encoder_hidden_states: stages %s" % info["stages"])
    return "unknown input, missing --cfg-uncond, bad mode, --cfg-scale without guidance, --invariant"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--drt", required=True)
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="drt_cfg_")
    ctx = Ctx(os.path.abspath(args.drt), tmp)
    teacher = Case("dit_teacher_op17", "inputs", 2)
    cases = [teacher, Case("dit_student_op17", "inputs", 1), Case("dit_student_op17", "inputs_b2", 2),
             Case("unet_op17", "inputs", 1), Case("unet_op17", "inputs_b2", 2),
             Case("diffusers_unet2dcond_op17", "inputs_b2", 2)]
    for case in cases:
        cu = {}

        def fold(case=case, cu=cu):
            cu["v"] = cond_uncond(ctx, case)
            return check_fold(ctx, case, cu["v"])

        ctx.check("fold %s (batch %d)" % (case.label, case.batch), fold)
        if case.fixture in ("dit_teacher_op17", "dit_student_op17") and "v" in cu:
            ctx.check("modes %s" % case.label, lambda case=case, cu=cu: check_modes(ctx, case, cu["v"]))
    ctx.check("uncond from .npy %s" % cases[2].label, lambda: check_uncond_file(ctx, cases[2]))
    for case in (teacher, cases[1], cases[3]):
        ctx.check("generate %s" % case.label, lambda case=case: check_generation(ctx, case))
    ctx.check("generate cfgpp/apg %s" % teacher.label, lambda: check_generation_modes(ctx, teacher))
    ctx.check("bench --teacher (folded)", lambda: check_bench(ctx, teacher))
    ctx.check("errors", lambda: check_errors(ctx, cases[1]))
    print("%d passed, %d failed" % (ctx.passed, ctx.failed))
    if args.keep:
        print("kept %s" % tmp)
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if ctx.failed else 0


if __name__ == "__main__":
    sys.exit(main())
