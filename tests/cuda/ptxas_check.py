#!/usr/bin/env python3
"""ptxas check of the Hopper attention kernels (no GPU needed).

The sm_90a attention (codegen/kernels/attention.cuh, warpgroup MMAs) is only fast when ptxas can
keep its wgmma.mma_async instructions asynchronous and its registers in registers. ptxas reports
when it cannot: it injects `warpgroup.arrive`/`warpgroup.wait` (a register written between
wgmmas without wgmma.fence: messages C7510..C7520, "wgmma ... serialized", "warpgroup.arrive is
injected") or spills. Neither changes the results, so the numerical tests cannot see them.

For each case (self-attention in the layouts an exporter produces, head dims 72 / 64 / 128, full
and partial key tiles, 64- and 128-row blocks, fp16 and bf16) this builds a one-attention ONNX
graph, compiles it with

    drt compile MODEL -o PLAN --target cuda --arch compute_90a --precision P
    drt inspect --image compute_90a PLAN > PTX      (the PTX NVRTC produced for sm_90a)

and assembles the PTX with `ptxas -arch=sm_90a -v`. It fails on any C75xx performance message,
on spills in an attention kernel, and when a case has no wgmma.mma_async at all (the sm_90a path
was not taken).

Exits 0 on success, 1 on a failure, 77 (skipped) without NVRTC, ptxas or the onnx package.
Usage: python3 tests/cuda/ptxas_check.py --drt build/bin/drt [-v]
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

# (name, heads, head_dim, tokens, precision): tokens 4096 -> 128-row blocks (at least 256 of them),
# 1000 -> a partial last key tile, 300 with 2 heads -> 64-row blocks
CASES = [
    ("dit_d72_s4096", 16, 72, 4096, "bf16"),
    ("d128_s4096", 8, 128, 4096, "bf16"),
    ("d64_s1000", 8, 64, 1000, "fp16"),
    ("d72_s300_64rows", 2, 72, 300, "bf16"),
]


def find_ptxas():
    for cand in (shutil.which("ptxas"), os.path.join(os.environ.get("CUDA_HOME", "/usr/local/cuda"), "bin", "ptxas")):
        if cand and os.path.isfile(cand) and os.access(cand, os.X_OK):
            return cand
    return None


def attention_model(path, heads, head_dim, tokens):
    import onnx
    from onnx import TensorProto as TP
    from onnx import helper as h
    c = heads * head_dim
    inits = [h.make_tensor("shp", TP.INT64, [4], [1, tokens, heads, head_dim]),
             h.make_tensor("shp2", TP.INT64, [3], [1, tokens, c]),
             h.make_tensor("sc", TP.FLOAT, [], [head_dim ** -0.5])]
    nodes = []
    for n in "qkv":
        nodes.append(h.make_node("Reshape", [n, "shp"], [n + "r"]))
        nodes.append(h.make_node("Transpose", [n + "r"], [n + "t"], perm=[0, 2, 3, 1] if n == "k" else [0, 2, 1, 3]))
    nodes += [h.make_node("MatMul", ["qt", "kt"], ["s"]), h.make_node("Mul", ["s", "sc"], ["ss"]),
              h.make_node("Softmax", ["ss"], ["p"], axis=-1), h.make_node("MatMul", ["p", "vt"], ["o"]),
              h.make_node("Transpose", ["o"], ["ot"], perm=[0, 2, 1, 3]), h.make_node("Reshape", ["ot", "shp2"], ["y"])]
    g = h.make_graph(nodes, "attention", [h.make_tensor_value_info(n, TP.FLOAT, [1, tokens, c]) for n in "qkv"],
                     [h.make_tensor_value_info("y", TP.FLOAT, [1, tokens, c])], inits)
    onnx.save(h.make_model(g, opset_imports=[h.make_opsetid("", 17)]), path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--drt", required=True)
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args()
    ptxas = find_ptxas()
    if not ptxas:
        print("skipped: no ptxas (CUDA toolkit) found")
        return 77
    try:
        import onnx  # noqa: F401
    except ImportError:
        print("skipped: no onnx package")
        return 77
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from compile_check import nvrtc_missing  # noqa: E402  (the same probe as ctest cuda-compile)
    why = nvrtc_missing(a.drt)
    if why:
        print("skipped: NVRTC is not available: " + why)
        return 77
    work = tempfile.mkdtemp(prefix="drt_ptxas_")
    env = dict(os.environ, DRT_CACHE_DIR="off")
    failures = 0
    try:
        for name, heads, d, tokens, prec in CASES:
            model, plan, ptx = (os.path.join(work, name + ext) for ext in (".onnx", ".plan", ".ptx"))
            attention_model(model, heads, d, tokens)
            r = subprocess.run([a.drt, "compile", model, "-o", plan, "--target", "cuda", "--arch", "compute_90a",
                                "--precision", prec], capture_output=True, text=True, env=env)
            if r.returncode != 0:
                print("FAIL %-18s drt compile: %s" % (name, r.stderr.strip()[-400:]))
                failures += 1
                continue
            with open(ptx, "wb") as f:
                r = subprocess.run([a.drt, "inspect", "--image", "compute_90a", plan], stdout=f, stderr=subprocess.PIPE)
            if r.returncode != 0:
                print("FAIL %-18s drt inspect --image: %s" % (name, r.stderr.decode().strip()[-300:]))
                failures += 1
                continue
            text = open(ptx).read()
            wgmma = len(re.findall(r"wgmma\.mma_async", text))
            r = subprocess.run([ptxas, "-arch=sm_90a", "-v", ptx, "-o", os.path.join(work, name + ".cubin")],
                               capture_output=True, text=True)
            log = r.stdout + r.stderr
            if a.verbose:
                print(log)
            problems = []
            if r.returncode != 0:
                problems.append("ptxas failed: " + log.strip()[-300:])
            problems += sorted(set(m.group(0) for m in re.finditer(r"\(C75\d\d\)[^\n]*", log)))[:3]
            # spills, per entry function: "Function properties for NAME ... N bytes spill stores"
            for fn, stores in re.findall(r"Function properties for (\S+)\n\s*\d+ bytes stack frame, (\d+) bytes spill "
                                         r"stores", log):
                if int(stores) > 0:
                    problems.append("%s spills %s bytes" % (fn, stores))
            regs = [int(x) for x in re.findall(r"Used (\d+) registers", log)]
            if wgmma == 0:
                problems.append("no wgmma.mma_async in the PTX: the sm_90a attention path was not taken")
            status = "ok  " if not problems else "FAIL"
            print("%s %-18s %s, %d wgmma, max %d registers%s" % (status, name, prec, wgmma, max(regs or [0]),
                                                                ("; " + "; ".join(problems)) if problems else ""))
            failures += bool(problems)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("%d of %d cases passed" % (len(CASES) - failures, len(CASES)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
