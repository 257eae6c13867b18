#!/usr/bin/env python3
"""PyTorch side of tests/gpu/run.sh: per-evaluation latency of the benchmark models
(tests/gpu/bench_models.py) in bf16 with eager and torch.compile on the same GPU, a 4-step
generation loop (Euler on the model output, the same amount of work as `drt generate --steps 4`)
in both modes, the FLOPs of one evaluation (torch.utils.flop_counter) and the measured dense
bf16 matmul peak of the GPU. torch.compile runs in each of --modes: "default" (keys compile_ms,
compile_gen4_ms) and "reduce-overhead" (CUDA graphs; keys compile_ro_ms, compile_ro_gen4_ms).
Writes one JSON object; --merge FILE starts from an earlier run's object on the same GPU and
measures only what it lacks (e.g. a mode it did not run).

usage: torch_bench.py --out FILE.json [--models dit_1024,dit_4096,unet_scaled] [--iters N]
                      [--no-compile] [--modes default,reduce-overhead] [--merge FILE] [--budget-s S]
"""
import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import torch  # noqa: E402

import bench_models as bm  # noqa: E402


def time_cuda(fn, iters, warmup=3):
    if not torch.cuda.is_available():  # --device cpu: a smoke test of this script, not a benchmark
        times = []
        for _ in range(iters):
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
        return sorted(times)[len(times) // 2]
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        fn()
        e.record()
        e.synchronize()
        times.append(s.elapsed_time(e))
    times.sort()
    return times[len(times) // 2]


def matmul_peak_tflops(device):
    n = 8192 if device == "cuda" else 512
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    ms = time_cuda(lambda: a @ b, 20, warmup=5)
    return 2 * n ** 3 / (ms * 1e-3) / 1e12


def count_flops(model, args):
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as fc:
        model(*args)
    return int(fc.get_total_flops())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--models", default=",".join(bm.CONFIGS))
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--modes", default="default,reduce-overhead", help="torch.compile modes to measure")
    ap.add_argument("--merge", default="", help="an earlier torch.json of this GPU: keep its figures")
    ap.add_argument("--budget-s", type=float, default=240.0, help="skip torch.compile once past this")
    ap.add_argument("--device", default="cuda", help="cuda (default); cpu only to smoke-test this script")
    a = ap.parse_args()
    dev = a.device
    t_start = time.time()
    torch.backends.cuda.matmul.allow_tf32 = True
    res = {"gpu": torch.cuda.get_device_name(0) if dev == "cuda" else "cpu", "torch": torch.__version__,
           "cuda": torch.version.cuda, "models": {}}
    if a.merge:
        with open(a.merge) as f:
            old = json.load(f)
        if old.get("gpu") != res["gpu"] or old.get("torch") != res["torch"]:
            sys.exit("--merge %s: measured on %s with torch %s, not this %s with torch %s" % (
                a.merge, old.get("gpu"), old.get("torch"), res["gpu"], res["torch"]))
        res = old

    def save():  # after each step: a later failure or timeout keeps what was measured
        with open(a.out, "w") as f:
            json.dump(res, f, indent=1)
    if "bf16_matmul_peak_tflops" not in res:
        res["bf16_matmul_peak_tflops"] = matmul_peak_tflops(dev)
    save()
    for name in a.models.split(","):
        try:
            bench_one(a, name, dev, res, t_start)
        except Exception as ex:  # noqa: BLE001  (one model failing must not lose the others)
            res["models"].setdefault(name, {})["error"] = "%s: %s" % (type(ex).__name__, ex)
            print("torch %-12s failed: %s" % (name, res["models"][name]["error"]), flush=True)
        save()
        torch.cuda.empty_cache()


def bench_one(a, name, dev, res, t_start):
    r = res["models"].setdefault(name, {})  # filled as measured: a failure keeps the earlier figures
    model = bm.build(name).to(dev, torch.bfloat16)
    # the sinusoidal timestep features are computed in float32 (as exported); the bf16 model
    # takes them in its own dtype, as a bf16 deployment of this network would
    for mod in model.modules():
        if type(mod).__name__ == "TimestepMLP":
            mod.mlp.register_forward_pre_hook(lambda m, inp: tuple(x.to(torch.bfloat16) for x in inp))
    feeds = bm.inputs(name)
    args = [torch.from_numpy(v).to(dev) for v in feeds.values()]
    args = [x.to(torch.bfloat16) if x.is_floating_point() else x for x in args]
    with torch.no_grad():
        if "flops" not in r:
            r["flops"] = count_flops(model, args)
        if "eager_ms" not in r:
            r["eager_ms"] = time_cuda(lambda: model(*args), a.iters)

        def loop(m):
            x = args[0]
            for k in range(4):
                t = torch.full_like(args[1], 999.0 - 250.0 * k)
                v = m(x, t, args[2])
                x = x - 0.25 * v
            return x
        if "eager_gen4_ms" not in r:
            r["eager_gen4_ms"] = time_cuda(lambda: loop(model), max(3, a.iters // 4))
        for mode in [x for x in a.modes.split(",") if x] if not a.no_compile else []:
            key = "compile" if mode == "default" else "compile_" + {"reduce-overhead": "ro"}.get(mode, mode)
            if key + "_ms" in r:
                continue
            if time.time() - t_start >= a.budget_s:
                r[key + "_skipped"] = "time budget"
                continue
            torch._dynamo.reset()
            cm = torch.compile(model, mode=None if mode == "default" else mode)
            t0 = time.time()
            for _ in range(2 if mode == "reduce-overhead" else 1):  # CUDA graphs record on a later call
                cm(*args)
            if dev == "cuda":
                torch.cuda.synchronize()
            r[key + "_s"] = time.time() - t0
            r[key + "_ms"] = time_cuda(lambda: cm(*args), a.iters)
            r[key + "_gen4_ms"] = time_cuda(lambda: loop(cm), max(3, a.iters // 4))
        if a.no_compile:
            r["compile_skipped"] = "--no-compile"
    print("torch %-12s eager %.2f ms  compile %s ms  reduce-overhead %s ms  %.1f GFLOP" % (
        name, r["eager_ms"], "%.2f" % r["compile_ms"] if "compile_ms" in r else "-",
        "%.2f" % r["compile_ro_ms"] if "compile_ro_ms" in r else "-", r["flops"] / 1e9), flush=True)


if __name__ == "__main__":
    main()
