#!/usr/bin/env python3
"""`drt generate` against diffusers scheduler loops around onnxruntime (references made by
gen_e2e_refs.py): same model, same Philox noise, final latents must agree.

usage: run_e2e.py --drt build/bin/drt [--tol 1e-4]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--drt", required=True)
    ap.add_argument("--tol", type=float, default=1e-4)
    a = ap.parse_args()
    meta = json.load(open(os.path.join(HERE, "e2e", "cases.json")))
    fx = os.path.join(HERE, "..", "models", "fixtures", meta["fixture"])
    passed = failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        plan = os.path.join(tmp, "student.plan")
        shape = "x".join(str(d) for d in meta["shape"])
        r = subprocess.run([a.drt, "compile", os.path.join(fx, "model.onnx"), "-o", plan, "--shape", f"sample={shape}"],
                           capture_output=True, text=True)
        if r.returncode:
            print("compile failed:", r.stderr)
            print("0 passed, 1 failed")
            return 1
        for c in meta["cases"]:
            out = os.path.join(tmp, c["name"] + ".npy")
            cmd = [a.drt, "generate", plan, "--schedule", c["schedule"], "--steps", str(c["steps"]), "--seed",
                   str(c["seed"]), "--input", "encoder_hidden_states=" + os.path.join(fx, "inputs",
                                                                                    "encoder_hidden_states.npy"),
                   "-o", out]
            if c["params"]:
                cmd += ["--schedule-params", c["params"]]
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode:
                print(f"{c['name']:28s} FAIL exit {r.returncode}: {r.stderr.strip()[:200]}")
                failed += 1
                continue
            got, ref = np.load(out), np.load(os.path.join(HERE, "e2e", c["name"] + ".npy"))
            if got.shape != ref.shape or not np.isfinite(got).all():
                print(f"{c['name']:28s} FAIL shape {got.shape} vs {ref.shape} or non-finite")
                failed += 1
                continue
            err = float(np.linalg.norm(got - ref) / max(np.linalg.norm(ref), 1e-30))
            ok = err <= a.tol
            print(f"{c['name']:28s} rel L2 {err:.3e} {'PASS' if ok else 'FAIL'}")
            passed += ok
            failed += not ok
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
