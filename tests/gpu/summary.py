#!/usr/bin/env python3
"""Merges the pieces tests/gpu/run.sh wrote into RESULTS_DIR/results.json and prints the short
table last. Exit status 1 when any correctness check failed (benchmarks never fail the run).

usage: summary.py RESULTS_DIR --arch sm_90 --elapsed SECONDS
"""
import argparse
import datetime
import json
import os
import sys


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def pick(row, *keys):
    """First present key; then any key containing every word of the first key's parts."""
    for k in keys:
        if k in row:
            return row[k]
    return None


def drt_times(doc):
    """(eval_gpu_ms, eval_host_ms, gen4_gpu_ms, gen4_host_ms) from `drt bench --json`."""
    out = [None, None, None, None]
    if not doc:
        return out
    for row in doc.get("rows", []):
        gpu = pick(row, "gpu_median_ms", "gpu_ms", "device_median_ms")
        if gpu is None:
            for k, v in row.items():
                if "gpu" in k and "median" in k:
                    gpu = v
        host = pick(row, "host_median_ms", "median_ms")
        if row.get("steps") == 0 or (row.get("steps") == 1 and out[0] is None and out[1] is None):
            out[0], out[1] = gpu, host
        if row.get("steps") == 4:
            out[2], out[3] = gpu, host
    return out


def fmt(x, f="%.2f"):
    return f % x if isinstance(x, (int, float)) else "-"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--arch", default="")
    ap.add_argument("--elapsed", type=int, default=0)
    a = ap.parse_args()
    d = a.dir
    res = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(), "arch": a.arch,
           "elapsed_s": a.elapsed}
    try:
        res["gpu"] = open(os.path.join(d, "gpu.txt")).read().strip()
        res["nvcc"] = open(os.path.join(d, "nvcc.txt")).read().strip()
    except OSError:
        pass
    fx = load(os.path.join(d, "fixtures.json"))
    kn = load(os.path.join(d, "kernels.json"))
    th = load(os.path.join(d, "torch.json")) or {}
    res["fixtures"], res["kernels"], res["torch"] = fx, kn, th
    ok = True
    lines = []
    if fx:
        by_prec = {}
        for c in fx["cases"]:
            p = by_prec.setdefault(c["precision"], [0, 0, 0.0])
            p[1] += 1
            if c.get("ok"):
                p[0] += 1
            p[2] = max(p[2], c.get("rel_l2_vs_cpu", 0.0) or 0.0)
        for prec, (passed, total, worst) in by_prec.items():
            lines.append("fixtures %-5s %3d/%-3d passed   worst rel L2 vs CPU %.1e" % (prec, passed, total, worst))
            ok = ok and passed == total
        for prec, g in (fx.get("generate") or {}).items():
            lines.append("generate 4 steps %-5s %s  rel L2 %s" % (prec, "ok" if g.get("ok") else "FAIL",
                                                                 fmt(g.get("rel_l2_vs_cpu"), "%.1e")))
            ok = ok and bool(g.get("ok"))
    else:
        lines.append("fixtures: not run")
    if kn:
        lines.append("kernel checks: %s/%s passed" % (kn.get("passed", "?"), kn.get("total", "?")))
        ok = ok and kn.get("passed") == kn.get("total")
    peak = th.get("bf16_matmul_peak_tflops")
    bench = {}
    lines.append("")
    lines.append("%-12s %9s %9s %9s %9s %7s %7s %7s %9s %9s" % (
        "model", "drt_gpu", "drt_host", "eager", "compile", "/eager", "/compl", "%floor", "gen4_drt", "gen4_comp"))
    for m in ("dit_1024", "dit_4096", "unet_scaled"):
        doc = load(os.path.join(d, "drt_%s.json" % m))
        t = (th.get("models") or {}).get(m, {})
        if not doc and not t:
            continue
        eg, eh, gg, gh = drt_times(doc)
        drt_ms = eg if eg is not None else eh
        b = {"drt_eval_gpu_ms": eg, "drt_eval_host_ms": eh, "drt_gen4_gpu_ms": gg, "drt_gen4_host_ms": gh,
             "torch_eager_ms": t.get("eager_ms"), "torch_compile_ms": t.get("compile_ms"),
             "torch_eager_gen4_ms": t.get("eager_gen4_ms"), "torch_compile_gen4_ms": t.get("compile_gen4_ms"),
             "flops": t.get("flops")}
        if drt_ms and t.get("eager_ms"):
            b["ratio_vs_eager"] = drt_ms / t["eager_ms"]
        if drt_ms and t.get("compile_ms"):
            b["ratio_vs_compile"] = drt_ms / t["compile_ms"]
        if drt_ms and peak and t.get("flops"):
            b["flop_floor_ms"] = t["flops"] / (peak * 1e12) * 1e3
            b["fraction_of_peak"] = b["flop_floor_ms"] / drt_ms
        bench[m] = b
        lines.append("%-12s %9s %9s %9s %9s %7s %7s %7s %9s %9s" % (
            m, fmt(eg), fmt(eh), fmt(t.get("eager_ms")), fmt(t.get("compile_ms")), fmt(b.get("ratio_vs_eager")),
            fmt(b.get("ratio_vs_compile")),
            fmt(100 * b["fraction_of_peak"], "%.0f%%") if "fraction_of_peak" in b else "-",
            fmt(gg if gg is not None else gh), fmt(t.get("compile_gen4_ms"))))
    res["bench"] = bench
    res["correct"] = ok
    with open(os.path.join(d, "results.json"), "w") as f:
        json.dump(res, f, indent=1)
    print("")
    print("==== distilrt GPU check: %s %s, %d s ====" % (res.get("gpu", "?"), a.arch, a.elapsed))
    if peak:
        print("bf16 matmul peak measured: %.0f TFLOP/s" % peak)
    for line in lines:
        print(line)
    print("times in ms per evaluation (bf16); ratios are distilrt / PyTorch; %floor = FLOP floor / distilrt time")
    print("correctness: %s   full results: %s" % ("PASS" if ok else "FAIL", os.path.join(d, "results.json")))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
