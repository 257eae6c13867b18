#!/usr/bin/env python3
"""Refit vs compile: wall time of `drt refit` (plan + another checkpoint -> plan) against
`drt compile` (ONNX -> plan) of the same model, interleaved rounds, best of each.

usage: scripts/bench_refit.py --drt build/bin/drt [--model ONNX] [--ckpt SAFETENSORS] [--rounds 10]
       [--ckpt-map SAFETENSORS] [--shape NAME=DIMS ...]
Prints both times and the ratio compile/refit. The default model is the DiT student fixture
with the adaptation checkpoints of tests/models/adapt (tests/models/gen_adapt_fixtures.py).
Process start-up is part of both times (it is what a user of the CLI waits for).
"""
import argparse, os, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def timed(args):
    t0 = time.perf_counter()
    r = subprocess.run(args, capture_output=True, text=True)
    dt = (time.perf_counter() - t0) * 1e3
    if r.returncode != 0:
        sys.exit("error: %s: %s" % (" ".join(args), (r.stderr or r.stdout).strip()))
    return dt


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--drt", default=os.path.join(ROOT, "build", "bin", "drt"))
    ap.add_argument("--model", default=os.path.join(ROOT, "tests/models/fixtures/dit_student_op17/model.onnx"))
    ap.add_argument("--ckpt", default=os.path.join(ROOT, "tests/models/adapt/dit_b.safetensors"))
    ap.add_argument("--ckpt-map", default=os.path.join(ROOT, "tests/models/adapt/dit_a.safetensors"),
                    help="checkpoint of the model itself, for the plan's weight map")
    ap.add_argument("--shape", action="append", default=None, help="NAME=DIMS for drt compile (repeatable)")
    ap.add_argument("--rounds", type=int, default=10)
    a = ap.parse_args()
    for f, what in ((a.drt, "drt binary (--drt)"), (a.model, "model (--model)"), (a.ckpt, "checkpoint (--ckpt)"),
                    (a.ckpt_map, "checkpoint (--ckpt-map)")):
        if not os.path.isfile(f):
            sys.exit("error: %s not found: %s" % (what, f))
    if a.shape is None:
        a.shape = ["sample=1x4x16x16", "timestep=1", "encoder_hidden_states=1x8x32"]
    with tempfile.TemporaryDirectory() as d:
        plan, out = os.path.join(d, "a.plan"), os.path.join(d, "b.plan")
        comp = [a.drt, "compile", a.model, "-o", plan, "--weights-map", a.ckpt_map]
        comp += sum((["--shape", s] for s in a.shape), [])
        refit = [a.drt, "refit", plan, "--weights", a.ckpt, "-o", out]
        timed(comp)
        timed(refit)
        tc, tr = [], []
        for _ in range(a.rounds):
            tc.append(timed(comp))
            tr.append(timed(refit))
    c, r = min(tc), min(tr)
    print("model    %s" % os.path.relpath(a.model, ROOT))
    print("compile  %.1f ms (best of %d)" % (c, a.rounds))
    print("refit    %.1f ms (best of %d)" % (r, a.rounds))
    print("ratio    compile/refit = %.1fx" % (c / r))


if __name__ == "__main__":
    main()
