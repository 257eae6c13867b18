#!/usr/bin/env python3
"""Per-evaluation CPU latency: distilrt vs onnxruntime, same thread count, interleaved rounds.

usage: scripts/bench_cpu.py --drt build/bin/drt [--fixture DIR ...] [--threads N] [--rounds 3] [--iters 10]
Prints one row per fixture with the median latency of each and the ratio distilrt/onnxruntime.
"""
import argparse, glob, json, os, re, subprocess, sys, time
import numpy as np


def ort_latency(model, feeds, threads, iters):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    sess.run(None, feeds)
    ts = []
    for _ in range(iters):
        t0 = time.perf_counter()
        sess.run(None, feeds)
        ts.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(ts))


def drt_latency(drt, model, inputs, threads, iters):
    args = [drt, "run", model, "--no-specialize", "--threads", str(threads), "--repeat", str(iters)]
    for name, path in inputs.items():
        args += ["--input", f"{name}={path}"]
    out = subprocess.run(args, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(out.stderr.strip())
    m = re.search(r"latency_ms min=([\d.]+) median=([\d.]+)", out.stdout)
    return float(m.group(2))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--drt", required=True)
    ap.add_argument("--fixture", action="append")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--json")
    a = ap.parse_args()
    root = os.path.join(os.path.dirname(__file__), "..", "tests", "models", "fixtures")
    fixtures = a.fixture or sorted(glob.glob(os.path.join(root, "*")))
    rows = []
    print(f"{'fixture':32s} {'distilrt ms':>12s} {'onnxruntime ms':>15s} {'ratio':>7s}   (threads={a.threads})")
    for fx in fixtures:
        model = os.path.join(fx, "model.onnx")
        inputs = {os.path.basename(p)[:-4]: p for p in glob.glob(os.path.join(fx, "inputs", "*.npy"))}
        feeds = {k: np.load(v) for k, v in inputs.items()}
        d, o = [], []
        try:
            for _ in range(a.rounds):  # interleave so drift affects both equally
                d.append(drt_latency(a.drt, model, inputs, a.threads, a.iters))
                o.append(ort_latency(model, feeds, a.threads, a.iters))
        except Exception as e:  # report, keep going
            print(f"{os.path.basename(fx):32s} error: {str(e)[:200]}")
            continue
        dm, om = float(np.median(d)), float(np.median(o))
        rows.append({"fixture": os.path.basename(fx), "distilrt_ms": dm, "onnxruntime_ms": om, "ratio": dm / om})
        print(f"{os.path.basename(fx):32s} {dm:12.3f} {om:15.3f} {dm / om:7.2f}x")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"threads": a.threads, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
