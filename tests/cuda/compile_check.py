#!/usr/bin/env python3
"""CUDA compile check (no GPU needed): every fixture model compiles with `drt compile --target cuda`.

For every fixture under tests/models/fixtures (the sampler e2e cases use one of them) and each
precision (fp32, fp16, bf16) this runs

    drt compile model.onnx -o PLAN --target cuda --precision P [--arch LIST] [--shape ...]

which renders the model's graphs (main graph, hoisted stages, shape buckets) as one CUDA program
and compiles it with NVRTC for every arch, then

    drt inspect PLAN, drt inspect --launches PLAN (one line per launch, as many as compile counted)

which parses the plan (CUDA section included), renders the program again from the loaded graphs
and fails unless its hash is the one the binaries were compiled from (what the runtime checks).
A few extra variants cover what the plain fixtures do not: per-step timestep tables and folded
classifier-free guidance (--schedule, --cfg-scale) and shape buckets (--shapes), plus tf32.

Archs: fp32 compiles for the default archs (sm_80, sm_86, sm_89, sm_90 and PTX compute_90);
fp16 and bf16 for sm_80 only: their wmma / tensor-core paths are the same source on every arch
>= sm_80, and each arch costs a full NVRTC run (about 2 CPU-seconds per arch and fixture; every
precision for every arch was well over the 3-minute budget on 2 cores). --full compiles every
precision for every default arch.

The NVRTC cache (DRT_CACHE_DIR) starts empty (a fresh temporary directory) so the timing is the
cold one; identical programs (the op17/op23 exports of a model usually render the same source)
still hit the cache within the run, as they would for a user.

Exits 0 when everything compiled, 1 on any failure, 77 (skipped) when NVRTC is not available.

Usage: python3 tests/cuda/compile_check.py --drt build/bin/drt [--filter REGEX] [--full] [-j N]
"""
import argparse
import concurrent.futures
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "models", "fixtures")
DEFAULT_ARCHS = "sm_80,sm_86,sm_89,sm_90,compute_90"
HALF_ARCHS = "sm_80"
SKIP = 77


def nvrtc_missing(drt):
    """The reason NVRTC cannot be used by `drt` (its error line), or None when it can."""
    probe = subprocess.run([drt, "compile", "--target", "cuda", "--arch", "sm_80", os.devnull, "-o",
                            os.devnull + ".plan"], capture_output=True, text=True)
    err = probe.stderr
    if "NVRTC" in err and ("not found" in err or "could not be loaded" in err or "built without" in err):
        return err.strip().splitlines()[-1]
    return None


def shape_args(meta):
    """--shape NAME=DIMS for every input with a symbolic dim (batch of the first data set)."""
    batch = meta.get("data_sets", [{}])[0].get("batch", 1)
    args = []
    for inp in meta["inputs"]:
        if any(isinstance(d, str) for d in inp["shape"]):
            dims = [batch if isinstance(d, str) else d for d in inp["shape"]]
            args += ["--shape", "%s=%s" % (inp["name"], "x".join(str(d) for d in dims))]
    return args


def cases(full):
    out = []
    for name in sorted(os.listdir(FIXTURES)):
        fdir = os.path.join(FIXTURES, name)
        mpath = os.path.join(fdir, "meta.json")
        if not os.path.isfile(mpath):
            continue
        meta = json.load(open(mpath))
        model = os.path.join(fdir, "model.onnx")
        base = shape_args(meta)
        for prec in ("fp32", "fp16", "bf16"):
            archs = DEFAULT_ARCHS if prec == "fp32" or full else HALF_ARCHS
            out.append(("%s/%s" % (name, prec), model, base + ["--precision", prec, "--arch", archs]))
        inputs = [i["name"] for i in meta["inputs"]]
        if name == "dit_student_op17":
            # per-step timestep tables (step stage) and folded CFG (drt.CfgCombine), half precision
            out.append((name + "/fp16+schedule+cfg", model,
                        base + ["--precision", "fp16", "--arch", "sm_80", "--schedule", "lcm", "--steps", "4",
                                "--cfg-scale", "4.5", "--cfg-uncond", "encoder_hidden_states=zeros"]))
            out.append((name + "/tf32", model, base + ["--precision", "tf32", "--arch", "sm_80"]))
        if name == "unet_op17" and "sample" in inputs:
            # shape buckets: batch 1 and 2 in one program
            out.append((name + "/bf16+buckets", model,
                        ["--shapes", "sample=1x4x16x16,2x4x16x16;timestep=1,2;"
                         "encoder_hidden_states=1x8x32,2x8x32", "--precision", "bf16", "--arch", "sm_80"]))
    return out


def last_lines(text, n=25):
    lines = [l for l in text.strip().splitlines() if l.strip()]
    return "\n".join("    " + l for l in lines[-n:])


class Result:
    def __init__(self, returncode, stdout, stderr, cpu):
        self.returncode, self.stdout, self.stderr, self.cpu = returncode, stdout, stderr, cpu


def run(cmd, env, timeout):
    """subprocess.run that also returns the child's CPU seconds (user + system, all its threads)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        p = subprocess.Popen(cmd, stdout=out, stderr=err, env=env)
        deadline = time.time() + timeout
        while True:
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            if time.time() > deadline:
                p.kill()
                os.wait4(p.pid, 0)
                raise subprocess.TimeoutExpired(cmd, timeout)
            time.sleep(0.02)
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Result(p.returncode, out.read().decode(errors="replace"), err.read().decode(errors="replace"),
                      ru.ru_utime + ru.ru_stime)


CPU = [0.0]


def run_case(drt, tmp, case, env, timeout):
    label, model, args = case
    plan = os.path.join(tmp, re.sub(r"[^A-Za-z0-9._-]", "_", label) + ".plan")
    t0 = time.time()
    r = run([drt, "compile", model, "-o", plan, "--target", "cuda"] + args, env, timeout)
    dt = time.time() - t0
    CPU[0] += r.cpu
    label = "%s" % label
    if r.returncode != 0:
        return label, dt, None, "compile exit %d:\n%s" % (r.returncode, last_lines(r.stderr + r.stdout))
    if not os.path.isfile(plan):
        return label, dt, None, "compile succeeded but wrote no plan"
    info = {}
    m = re.search(r"cuda:\s+(\d+) kernels, (\d+) launches in (\d+) graphs, (\d+) host-fallback", r.stdout)
    if m:
        info = {"kernels": int(m.group(1)), "launches": int(m.group(2)), "graphs": int(m.group(3)),
                "host": int(m.group(4))}
    m = re.search(r"\((\d+) of (\d+) archs from the cache\)", r.stdout)
    if m:
        info["cached"] = "%s/%s" % (m.group(1), m.group(2))
    info["cpu"] = r.cpu
    i = run([drt, "inspect", plan], env, timeout)
    CPU[0] += i.cpu
    # the launch listing: one line per launch, as many as compile counted
    ll = run([drt, "inspect", "--launches", plan], env, timeout)
    CPU[0] += ll.cpu
    os.unlink(plan)
    if ll.returncode != 0:
        return label, dt, info, "inspect --launches exit %d:\n%s" % (ll.returncode, last_lines(ll.stderr + ll.stdout))
    listed = re.findall(r"^\s+\d+ node \d+ +\S+ .*?(?:kernel drt_\w+ grid \d+x\d+x\d+|gemm \d+x\d+x\d+ batch|"
                        r"copy \d+ bytes|host: )", ll.stdout, re.M)
    if "launches" in info and len(listed) != info["launches"]:
        return label, dt, info, "inspect --launches lists %d launches, compile counted %d" % (len(listed),
                                                                                          info["launches"])
    if i.returncode != 0:
        return label, dt, info, "inspect exit %d:\n%s" % (i.returncode, last_lines(i.stderr + i.stdout))
    want_prec = re.search(r"--precision (\w+)", " ".join(args)).group(1)
    want_archs = re.search(r"--arch (\S+)", " ".join(args)).group(1).split(",")
    m = re.search(r"^cuda:\s+precision (\w+)", i.stdout, re.M)
    if not m or m.group(1) != want_prec:
        return label, dt, info, "inspect shows no CUDA section of precision %s:\n%s" % (want_prec,
                                                                                     last_lines(i.stdout))
    images = re.search(r"^  images:(.*)$", i.stdout, re.M)
    got = re.findall(r"(sm_\w+|compute_\w+) [\d.]+ KiB", images.group(1)) if images else []
    if got != want_archs:
        return label, dt, info, "inspect lists images %s, expected %s" % (got, want_archs)
    if "matches the program rendered" not in i.stdout:
        return label, dt, info, "inspect did not confirm the source hash:\n%s" % last_lines(i.stdout)
    return label, dt, info, None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--drt", required=True)
    ap.add_argument("--filter", default=None, help="regex over 'fixture/variant'")
    ap.add_argument("--full", action="store_true", help="every precision for every default arch")
    ap.add_argument("-j", "--jobs", type=int, default=0,
                    help="parallel compiles (default: one per CPU; a drt compile also runs one NVRTC thread per "
                         "arch, up to the CPU count)")
    ap.add_argument("--timeout", type=int, default=600, help="seconds per command")
    ap.add_argument("--keep-cache", default=None, help="use this DRT_CACHE_DIR instead of a fresh one")
    a = ap.parse_args()

    why = nvrtc_missing(a.drt)
    if why:
        print("SKIP: NVRTC is not available: " + why)
        return SKIP

    all_cases = cases(a.full)
    if a.filter:
        rx = re.compile(a.filter)
        all_cases = [c for c in all_cases if rx.search(c[0])]
    if not all_cases:
        print("no fixtures found under %s (or none match the filter)" % FIXTURES)
        print("0 passed, 1 failed")
        return 1
    jobs = a.jobs or max(1, os.cpu_count() or 1)
    tmp = tempfile.mkdtemp(prefix="drt_cuda_check_")
    env = dict(os.environ)
    env["DRT_CACHE_DIR"] = a.keep_cache or os.path.join(tmp, "nvrtc-cache")
    passed = failed = 0
    t0 = time.time()
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as ex:
            futs = [ex.submit(run_case, a.drt, tmp, c, env, a.timeout) for c in all_cases]
            for f in futs:
                try:
                    label, dt, info, err = f.result()
                except subprocess.TimeoutExpired as e:
                    label, dt, info, err = " ".join(e.cmd[:3]), float(a.timeout), None, "timed out"
                detail = ""
                if info:
                    detail = "cpu %5.1f s, %d kernels, %d launches, %d graphs, %d host-fallback nodes, cache %s" % (
                        info.get("cpu", 0), info.get("kernels", 0), info.get("launches", 0), info.get("graphs", 0),
                        info.get("host", 0), info.get("cached", "?"))
                if err:
                    failed += 1
                    print("FAIL %-44s %6.1f s  %s" % (label, dt, err))
                else:
                    passed += 1
                    print("ok   %-44s %6.1f s  %s" % (label, dt, detail))
                sys.stdout.flush()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    total = time.time() - t0
    print("%d passed, %d failed in %.1f s wall, %.1f s CPU (cold NVRTC cache, %d parallel compiles, %d CPUs)" % (
        passed, failed, total, CPU[0], jobs, os.cpu_count() or 0))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
