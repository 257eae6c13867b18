#!/usr/bin/env python3
"""Correctness part of tests/gpu/run.sh: every model fixture (tests/models/fixtures) compiled with
`drt compile --target cuda` in each precision, evaluated with `drt run --backend cuda` and compared
with `drt run --backend cpu` on the same plan and inputs (relative L2 error per output; fp32/tf32
<= 1e-3, fp16/bf16 <= 1e-2, a zoo fixture's bf16 <= its meta.json tolerance_bf16; any NaN/Inf
fails; each case records the bound it was held to), plus a 4-step `drt generate` on CUDA vs CPU for
the DiT student. Writes one JSON object with every figure.

usage: check_fixtures.py --drt BIN --arch sm_90 --out FILE.json [--precisions fp32,tf32,fp16,bf16]
                         [--filter REGEX] [--work DIR] [--env K=V ...] [--jobs N] [--no-generate] [--variants 1,last]
                         [--emulate MOCK_SO]   (dry run on a machine without a GPU)
"""
import argparse
import glob
import json
import os
import re
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "models", "fixtures")
TOL = {"fp32": 1e-3, "tf32": 1e-3, "fp16": 1e-2, "bf16": 1e-2}


def rel_l2(a, b):
    a = a.astype(np.float64).ravel()
    b = b.astype(np.float64).ravel()
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def run(cmd, env, timeout=300):
    t0 = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    return p.returncode, p.stdout + p.stderr, time.time() - t0


def compare_dirs(got_dir, ref_dir, tol):
    outs, worst, ok = {}, 0.0, True
    for ref in sorted(glob.glob(os.path.join(ref_dir, "*.npy"))):
        name = os.path.basename(ref)
        got = os.path.join(got_dir, name)
        if not os.path.exists(got):
            outs[name] = "missing"
            ok = False
            continue
        a, b = np.load(got), np.load(ref)
        if a.shape != b.shape:
            outs[name] = "shape %s vs %s" % (a.shape, b.shape)
            ok = False
            continue
        finite = bool(np.isfinite(a.astype(np.float64)).all())
        e = rel_l2(a, b)
        outs[name] = {"rel_l2": e, "finite": finite}
        worst = max(worst, e)
        ok = ok and finite and e <= tol
    return ok, worst, outs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--drt", required=True)
    ap.add_argument("--arch", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--precisions", default="fp32,tf32,fp16,bf16")
    ap.add_argument("--filter", default="")
    ap.add_argument("--work", default=None)
    ap.add_argument("--env", action="append", default=[])
    ap.add_argument("--jobs", type=int, default=min(8, os.cpu_count() or 1))
    ap.add_argument("--no-generate", action="store_true", help="leave out the few-step generation check")
    ap.add_argument("--variants", default="",
                    help="bf16: also run each plan with DRT_CUDA_VARIANT=K for each K of this comma list "
                         "(nodes computed in more than one way, e.g. convolutions: 1 = implicit GEMM, last = "
                         "im2col + cuBLASLt) and check those outputs too; the plain run keeps the executor's "
                         "timed choice")
    ap.add_argument("--emulate", default=None, metavar="MOCK_SO",
                    help="dry run without a GPU: the CUDA runs go through the emulator (tests/cuda_emu) "
                         "with this mock driver library")
    a = ap.parse_args()
    env = dict(os.environ)
    for kv in a.env:
        k, v = kv.split("=", 1)
        env[k] = v
    work = a.work or tempfile.mkdtemp(prefix="drt-gpu-")
    os.makedirs(work, exist_ok=True)
    jobs = []
    for fdir in sorted(glob.glob(os.path.join(FIXTURES, "*"))):
        name = os.path.basename(fdir)
        if os.path.exists(os.path.join(fdir, "model.onnx")) and re.search(a.filter, name):
            jobs += [(fdir, prec) for prec in a.precisions.split(",")]

    def emulated_env(plan):
        """Environment that routes --backend cuda through the emulator: the plan's program built
        for the CPU with tests/cuda_emu/build_kernels.sh and the mock driver."""
        src, so = plan + ".cu", plan + ".so"
        with open(src, "w") as f:
            subprocess.run([a.drt, "inspect", "--cuda-source", plan], stdout=f, check=True, env=env)
        # an sm_90a plan: the emulator takes the sm_90a code paths (warpgroup MMAs) too
        flags = ["-D__CUDA_ARCH_FEAT_SM90_ALL"] if a.arch == "sm_90a" else []
        subprocess.run([os.path.join(HERE, "..", "cuda_emu", "build_kernels.sh"), src, so] + flags, check=True,
                       env=env)
        e = dict(env)
        e.update(DRT_CUDA_LIBRARY=a.emulate, DRT_CUBLASLT_LIBRARY=a.emulate, DRT_MOCK_CUDA_KERNELS=so)
        return e

    def one(job):
        fdir, prec = job
        name = os.path.basename(fdir)
        inputs = sorted(glob.glob(os.path.join(fdir, "inputs", "*.npy")))
        case = {"fixture": name, "precision": prec}
        plan = os.path.join(work, "%s_%s.plan" % (name, prec))
        cmd = [a.drt, "compile", os.path.join(fdir, "model.onnx"), "-o", plan, "--target", "cuda",
               "--arch", a.arch, "--precision", prec]
        for p in inputs:
            arr = np.load(p, mmap_mode="r")
            cmd += ["--shape", "%s=%s" % (os.path.basename(p)[:-4], "x".join(map(str, arr.shape)) or "1")]
        rc, log, dt = run(cmd, env)
        case["compile_s"] = dt
        if rc != 0:
            case.update(ok=False, error="compile: " + log.strip()[-2000:])
        else:
            dirs = {}
            try:
                run_env = emulated_env(plan) if a.emulate else env
            except (subprocess.CalledProcessError, OSError) as ex:
                run_env = None
                case.update(ok=False, error="emulator build: %s" % ex)
            for backend in ("cpu", "cuda") if run_env else ():
                od = os.path.join(work, "%s_%s_%s" % (name, prec, backend))
                os.makedirs(od, exist_ok=True)
                cmd = [a.drt, "run", plan, "--backend", backend, "--output-dir", od]
                for p in inputs:
                    cmd += ["--input", "%s=%s" % (os.path.basename(p)[:-4], p)]
                rc, log, dt = run(cmd, run_env, timeout=900)
                case[backend + "_run_s"] = dt
                if rc != 0:
                    case.update(ok=False, error="%s run: %s" % (backend, log.strip()[-2000:]))
                    break
                dirs[backend] = od
            if len(dirs) == 2:
                tol = TOL[prec]
                if prec == "bf16":  # zoo fixtures: 1.25x PyTorch's own bf16 error when above 1e-2
                    with open(os.path.join(fdir, "meta.json")) as f:
                        tol = json.load(f).get("tolerance_bf16", tol)
                ok, worst, outs = compare_dirs(dirs["cuda"], dirs["cpu"], tol)
                _, worst_ref, _ = compare_dirs(dirs["cuda"], os.path.join(fdir, "expected"), 1.0)
                case.update(ok=ok, rel_l2_vs_cpu=worst, rel_l2_vs_onnxruntime=worst_ref, outputs=outs, tolerance=tol)
                for k in [v for v in a.variants.split(",") if v] if prec == "bf16" else []:
                    od = os.path.join(work, "%s_%s_cuda_v%s" % (name, prec, k))
                    os.makedirs(od, exist_ok=True)
                    cmd = [a.drt, "run", plan, "--backend", "cuda", "--output-dir", od]
                    for p in inputs:
                        cmd += ["--input", "%s=%s" % (os.path.basename(p)[:-4], p)]
                    venv = dict(run_env)
                    venv["DRT_CUDA_VARIANT"] = k
                    rc, log, _ = run(cmd, venv, timeout=900)
                    if rc != 0:
                        case.update(ok=False, error="cuda run, DRT_CUDA_VARIANT=%s: %s" % (k, log.strip()[-2000:]))
                        break
                    vok, vworst, _ = compare_dirs(od, dirs["cpu"], tol)
                    case.setdefault("variants", {})[k] = vworst
                    if not vok:
                        case.update(ok=False, error="DRT_CUDA_VARIANT=%s: rel L2 %.3g > %g" % (k, vworst, tol))
        print("%s %-28s %-5s %s" % ("ok  " if case.get("ok") else "FAIL", name, prec,
              case.get("error", "")[:300] if not case.get("ok") and case.get("error")
              else "rel_l2 vs cpu %.2e" % case["rel_l2_vs_cpu"] if "rel_l2_vs_cpu" in case else ""), flush=True)
        return case

    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(max_workers=a.jobs) as pool:
        cases = list(pool.map(one, jobs))
    # few-step generation on the device (one CUDA graph) vs the CPU loop, same Philox noise
    gen = {}
    st = os.path.join(FIXTURES, "dit_student_op17")
    if os.path.isdir(st) and re.search(a.filter, "dit_student_op17") and not a.no_generate:
        for prec in ("fp32", "bf16"):
            plan = os.path.join(work, "gen_%s.plan" % prec)
            cmd = [a.drt, "compile", os.path.join(st, "model.onnx"), "-o", plan, "--target", "cuda", "--arch", a.arch,
                   "--precision", prec, "--schedule", "dmd2", "--shape", "batch=1"]
            rc, log, _ = run(cmd, env)
            if rc != 0:
                gen[prec] = {"ok": False, "error": "compile: " + log.strip()[-1500:]}
                continue
            ctx = os.path.join(st, "inputs", "encoder_hidden_states.npy")
            c = np.load(ctx)[:1]
            cpath = os.path.join(work, "ctx1.npy")
            np.save(cpath, c)
            outs = {}
            genv = emulated_env(plan) if a.emulate else env
            for backend in ("cpu", "cuda"):
                o = os.path.join(work, "gen_%s_%s.npy" % (prec, backend))
                cmd = [a.drt, "generate", plan, "--backend", backend, "--steps", "4", "--seed", "7",
                       "--input", "encoder_hidden_states=" + cpath, "-o", o]
                rc, log, dt = run(cmd, genv, timeout=900)
                if rc != 0:
                    gen[prec] = {"ok": False, "error": "%s generate: %s" % (backend, log.strip()[-1500:])}
                    break
                outs[backend] = np.load(o)
            if len(outs) == 2:
                e = rel_l2(outs["cuda"], outs["cpu"])
                fin = bool(np.isfinite(outs["cuda"]).all())
                gen[prec] = {"ok": fin and e <= TOL[prec], "rel_l2_vs_cpu": e, "finite": fin}
            print("%s generate 4 steps %-5s %s" % ("ok  " if gen[prec].get("ok") else "FAIL", prec,
                  gen[prec].get("rel_l2_vs_cpu", gen[prec].get("error", ""))), flush=True)
    res = {"arch": a.arch, "cases": cases, "generate": gen,
           "passed": sum(1 for c in cases if c.get("ok")), "total": len(cases)}
    with open(a.out, "w") as f:
        json.dump(res, f, indent=1)
    print("fixtures: %d/%d passed" % (res["passed"], res["total"]))
    return 0 if res["passed"] == res["total"] and all(g.get("ok") for g in gen.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
