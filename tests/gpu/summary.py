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


def drt_times(doc):
    """Figures from `drt bench --json` (CUDA): device time (CUDA events) and host latency.

    one_nfe: a whole 1-step generation (prologue stages + one network evaluation + sampler update,
             one CUDA graph): what one evaluation of a 1-NFE student costs, comparable with one
             PyTorch forward (which recomputes the text/timestep work every call);
    step:    one evaluation of the per-step graph alone (hoisted prologue work excluded);
    gen4:    a whole 4-step generation."""
    out = {"one_nfe_gpu": None, "one_nfe_host": None, "step_gpu": None, "eval_host": None, "gen4_gpu": None,
           "gen4_host": None}
    if not doc:
        return out
    for row in doc.get("rows", []):
        if row.get("steps") == 0:
            out["eval_host"] = row.get("median_ms")
        elif row.get("steps") == 1:
            out["one_nfe_host"] = row.get("median_ms")
        elif row.get("steps") == 4:
            out["gen4_host"] = row.get("median_ms")
    for row in doc.get("gpu_rows", []):
        key = {0: "step_gpu", 1: "one_nfe_gpu", 4: "gen4_gpu"}.get(row.get("steps"))
        if key:
            out[key] = row.get("median_ms")
    return out


def attention_ms(doc):
    """Sum of the attention launches in a drt bench --profile (kernel rows of drt.Attention)."""
    rows = ((doc or {}).get("profile") or {}).get("rows", [])
    return sum(r.get("ms", 0.0) for r in rows if "Attention" in r.get("op", ""))


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
    fx90a = load(os.path.join(d, "fixtures_sm90a.json"))  # run.sh --ab-wgmma: the sm_90a plans
    kn = load(os.path.join(d, "kernels.json"))
    th = load(os.path.join(d, "torch.json")) or {}
    res["fixtures"], res["kernels"], res["torch"] = fx, kn, th
    if fx90a:
        res["fixtures_sm90a"] = fx90a
    ok = True
    lines = []
    for tag, doc in (("sm_90a ", fx90a),):
        if not doc:
            continue
        for prec in sorted({c["precision"] for c in doc["cases"]}):
            cs = [c for c in doc["cases"] if c["precision"] == prec]
            passed = sum(1 for c in cs if c.get("ok"))
            worst = max([c.get("rel_l2_vs_cpu", 0.0) or 0.0 for c in cs] or [0.0])
            lines.append("fixtures %s%-5s %3d/%-3d passed   worst rel L2 vs CPU %.1e (wgmma attention)" % (
                tag, prec, passed, len(cs), worst))
            ok = ok and passed == len(cs)
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
    nd = load(os.path.join(d, "onnx_nodes.json"))
    res["onnx_nodes"] = nd
    if nd:
        lines.append("ONNX node tests on CUDA (%s): %s/%s passed, %s expected failures%s" % (
            nd.get("precision", "?"), nd.get("passed", "?"), nd.get("total", "?"), nd.get("xfail", 0),
            "" if nd.get("gpu") else " (emulated)"))
        bad = [c["name"] for c in nd.get("cases", []) if not c.get("ok")]
        if bad:
            lines.append("  failed: " + ", ".join(bad[:12]) + (" ..." if len(bad) > 12 else ""))
        ok = ok and not bad
    peak = th.get("bf16_matmul_peak_tflops")
    bench = {}
    lines.append("")
    hdr = "%-12s %8s %8s %8s %8s %8s %7s %7s %7s %8s %8s %7s"
    lines.append(hdr % ("model", "drt_1nfe", "drt_step", "drt_host", "eager", "compile", "/eager", "/compl", "%floor",
                        "gen4_drt", "gen4_cmp", "/compl"))
    for m in ("dit_1024", "dit_4096", "unet_scaled"):
        doc = load(os.path.join(d, "drt_%s.json" % m))
        t = (th.get("models") or {}).get(m, {})
        if not doc and not t:
            continue
        dt = drt_times(doc)
        drt_ms = dt["one_nfe_gpu"]
        b = dict(("drt_" + k + "_ms", v) for k, v in dt.items())
        b.update({"torch_eager_ms": t.get("eager_ms"), "torch_compile_ms": t.get("compile_ms"),
                  "torch_compile_reduce_overhead_ms": t.get("compile_ro_ms"),
                  "torch_eager_gen4_ms": t.get("eager_gen4_ms"), "torch_compile_gen4_ms": t.get("compile_gen4_ms"),
                  "torch_compile_reduce_overhead_gen4_ms": t.get("compile_ro_gen4_ms"), "flops": t.get("flops")})
        # the comparison is with the faster torch.compile mode (default or reduce-overhead = CUDA graphs)
        modes = [(t[k], k) for k in ("compile_ms", "compile_ro_ms") if t.get(k)]
        best, best_key = min(modes) if modes else (None, None)
        gen4 = t.get("compile_ro_gen4_ms" if best_key == "compile_ro_ms" else "compile_gen4_ms")
        b["torch_compile_best_mode"] = {"compile_ms": "default", "compile_ro_ms": "reduce-overhead"}.get(best_key)
        if drt_ms and t.get("eager_ms"):
            b["ratio_vs_eager"] = drt_ms / t["eager_ms"]
        if drt_ms and t.get("compile_ms"):
            b["ratio_vs_compile_default"] = drt_ms / t["compile_ms"]
        if drt_ms and t.get("compile_ro_ms"):
            b["ratio_vs_compile_reduce_overhead"] = drt_ms / t["compile_ro_ms"]
        if drt_ms and best:
            b["ratio_vs_compile"] = drt_ms / best
        if dt["gen4_gpu"] and gen4:
            b["gen4_ratio_vs_compile"] = dt["gen4_gpu"] / gen4
        if drt_ms and peak and t.get("flops"):
            b["flop_floor_ms"] = t["flops"] / (peak * 1e12) * 1e3
            b["fraction_of_peak"] = b["flop_floor_ms"] / drt_ms
        bench[m] = b
        lines.append(hdr % (
            m, fmt(drt_ms), fmt(dt["step_gpu"]), fmt(dt["one_nfe_host"]), fmt(t.get("eager_ms")),
            fmt(best) + ("*" if best_key == "compile_ro_ms" else ""), fmt(b.get("ratio_vs_eager")),
            fmt(b.get("ratio_vs_compile")),
            fmt(100 * b["fraction_of_peak"], "%.0f%%") if "fraction_of_peak" in b else "-",
            fmt(dt["gen4_gpu"]), fmt(gen4), fmt(b.get("gen4_ratio_vs_compile"))))
        if t.get("compile_ms") and t.get("compile_ro_ms"):
            lines.append("%-12s torch.compile default %.2f ms, reduce-overhead %.2f ms" % (
                "", t["compile_ms"], t["compile_ro_ms"]))
        nopdl = load(os.path.join(d, "drt_%s_nopdl.json" % m))
        if nopdl and drt_ms:
            np_ms = drt_times(nopdl)["one_nfe_gpu"]
            b["without_pdl_one_nfe_ms"] = np_ms
            lines.append("%-12s without programmatic dependent launch (DRT_CUDA_PDL=0): 1-NFE %s ms vs %s ms" % (
                "", fmt(np_ms), fmt(drt_ms)))
        im2col = load(os.path.join(d, "drt_%s_im2col.json" % m))
        if im2col and drt_ms:
            ic_ms = drt_times(im2col)["one_nfe_gpu"]
            b["im2col_only_one_nfe_ms"] = ic_ms
            lines.append("%-12s convolutions as im2col + cuBLASLt only (DRT_CUDA_VARIANT=last): 1-NFE %s ms vs %s ms "
                         "with the timed choice (implicit GEMM where faster)" % ("", fmt(ic_ms), fmt(drt_ms)))
        # A/B variant of the distilrt plan (run.sh --ab-attn): the same model, other attention choices
        ab = load(os.path.join(d, "drt_%s_ab.json" % m))
        if ab:
            try:
                knob = open(os.path.join(d, "drt_%s_ab.txt" % m)).read().strip()
            except OSError:
                knob = "?"
            ab_ms = drt_times(ab)["one_nfe_gpu"]
            b["ab"] = {"knob": knob, "one_nfe_ms": ab_ms, "attention_ms": attention_ms(ab)}
            extra = ""
            if ab_ms and best:
                b["ab"]["ratio_vs_compile"] = ab_ms / best
                extra += ", %.2fx torch.compile" % (ab_ms / best)
            if ab_ms and b.get("flop_floor_ms"):
                b["ab"]["fraction_of_peak"] = b["flop_floor_ms"] / ab_ms
                extra += ", %.0f%% of the FLOP floor" % (100 * b["flop_floor_ms"] / ab_ms)
            b["attention_ms"] = attention_ms(doc)
            lines.append("%-12s A/B %s: 1-NFE %s ms%s (attention %.2f ms) vs this plan %s ms (attention %.2f ms)" % (
                "", knob, fmt(ab_ms), extra, attention_ms(ab), fmt(drt_ms), attention_ms(doc)))
    for m in ("dit_1024", "dit_4096", "unet_scaled"):
        prof = (load(os.path.join(d, "drt_%s.json" % m)) or {}).get("profile")
        if not prof:
            continue
        lines.append("")
        lines.append("%s launch profile (one evaluation, launches one by one, %.2f ms):" % (m, prof["total_ms"]))
        for r in prof["rows"][:12]:
            tf = "%.0f TFLOP/s" % (r["flops"] / (r["ms"] * 1e-3) / 1e12) if r.get("flops") and r["ms"] > 0 else ""
            lines.append("  %7.3f ms %5.1f%% %4dx  %-16s %-36s %s" % (
                r["ms"], 100 * r["ms"] / max(prof["total_ms"], 1e-9), r["calls"], r["op"], r["name"][:36], tf))
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
    print("ms, bf16, GPU time from CUDA events. drt_1nfe: one whole 1-step generation (prologue + network + sampler,")
    print("one CUDA graph), compared with one PyTorch forward; drt_step: the per-step graph alone (hoisted work")
    print("excluded); drt_host: host latency of drt_1nfe; gen4: 4-step generation. Ratios are distilrt / PyTorch;")
    print("%floor = FLOP floor (FLOPs of one forward / measured bf16 matmul peak) / drt_1nfe. compile: the faster")
    print("torch.compile mode (* = reduce-overhead, i.e. CUDA graphs; else the default mode).")
    print("correctness: %s   full results: %s" % ("PASS" if ok else "FAIL", os.path.join(d, "results.json")))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
