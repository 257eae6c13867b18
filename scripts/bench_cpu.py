#!/usr/bin/env python3
"""Per-evaluation CPU latency: distilrt vs onnxruntime, same thread count, interleaved rounds.

usage: scripts/bench_cpu.py --drt build/bin/drt [--fixture DIR ...] [--threads N] [--rounds 3] [--iters 10]
                            [--disable-pass NAME ...] [--unfused]
Prints one row per fixture with the median latency of each and the ratio distilrt/onnxruntime.
--disable-pass NAME (repeatable; all-fusions = every fusion pass) times a plan compiled with
`drt compile --disable-pass NAME` instead of the full pipeline. --unfused adds a column: the
same fixture compiled with --disable-pass all-fusions, and the ratio fused/unfused.
"""
import argparse, glob, json, os, re, subprocess, sys, tempfile, time
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
    """`model` is an ONNX file (run through the full pipeline) or a compiled .plan."""
    args = [drt, "run", model, "--threads", str(threads), "--repeat", str(iters)]
    if not model.endswith(".plan"):
        args.append("--no-specialize")
    for name, path in inputs.items():
        args += ["--input", f"{name}={path}"]
    out = subprocess.run(args, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(out.stderr.strip())
    m = re.search(r"latency_ms min=([\d.]+) median=([\d.]+)", out.stdout)
    return float(m.group(2))


def drt_compile(drt, model, inputs, disabled, out_dir):
    """Compiles `model` with the input shapes of the fixture and `disabled` passes; returns the plan."""
    plan = os.path.join(out_dir, "%s_%d.plan" % ("_".join(disabled) or "all", abs(hash(model)) % 100000))
    args = [drt, "compile", model, "-o", plan]
    for name, path in inputs.items():
        shape = np.load(path, mmap_mode="r").shape
        if shape:
            args += ["--shape", "%s=%s" % (name, "x".join(str(d) for d in shape))]
    for d in disabled:
        args += ["--disable-pass", d]
    out = subprocess.run(args, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(out.stderr.strip())
    return plan


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--drt", required=True)
    ap.add_argument("--fixture", action="append")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--json")
    ap.add_argument("--disable-pass", action="append", default=[], metavar="NAME")
    ap.add_argument("--unfused", action="store_true", help="also time --disable-pass all-fusions")
    a = ap.parse_args()
    tmp = tempfile.TemporaryDirectory(prefix="bench_cpu_")
    root = os.path.join(os.path.dirname(__file__), "..", "tests", "models", "fixtures")
    fixtures = a.fixture or sorted(glob.glob(os.path.join(root, "*")))
    rows = []
    extra = f" {'unfused ms':>11s} {'fused/unfused':>14s}" if a.unfused else ""
    note = f", disabled: {', '.join(a.disable_pass)}" if a.disable_pass else ""
    print(f"{'fixture':32s} {'distilrt ms':>12s} {'onnxruntime ms':>15s} {'ratio':>7s}{extra}   (threads={a.threads}{note})")
    for fx in fixtures:
        model = os.path.join(fx, "model.onnx")
        inputs = {os.path.basename(p)[:-4]: p for p in glob.glob(os.path.join(fx, "inputs", "*.npy"))}
        feeds = {k: np.load(v) for k, v in inputs.items()}
        d, o, u = [], [], []
        try:
            target = drt_compile(a.drt, model, inputs, a.disable_pass, tmp.name) if a.disable_pass else model
            unfused = drt_compile(a.drt, model, inputs, ["all-fusions"], tmp.name) if a.unfused else None
            for _ in range(a.rounds):  # interleave so drift affects both equally
                d.append(drt_latency(a.drt, target, inputs, a.threads, a.iters))
                o.append(ort_latency(model, feeds, a.threads, a.iters))
                if unfused:
                    u.append(drt_latency(a.drt, unfused, inputs, a.threads, a.iters))
        except Exception as e:  # report, keep going
            print(f"{os.path.basename(fx):32s} error: {str(e)[:200]}")
            continue
        dm, om = float(np.median(d)), float(np.median(o))
        row = {"fixture": os.path.basename(fx), "distilrt_ms": dm, "onnxruntime_ms": om, "ratio": dm / om}
        line = f"{os.path.basename(fx):32s} {dm:12.3f} {om:15.3f} {dm / om:7.2f}x"
        if u:
            um = float(np.median(u))
            row.update({"unfused_ms": um, "fused_over_unfused": dm / um})
            line += f" {um:11.3f} {dm / um:13.2f}x"
        rows.append(row)
        print(line)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"threads": a.threads, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
