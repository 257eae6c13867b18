#!/usr/bin/env python3
"""ONNX's own node tests on the CUDA backend, through the emulator (tests/cuda_emu/README.md).

Every node test of the installed onnx package that the CPU conformance run supports (same
classification and exclude.txt as tests/conformance/run_backend.py) is compiled with
`drt compile --target cuda`, its kernels built for the emulator, and run with `drt run --backend
cuda` (mock driver); its outputs must match ONNX's reference outputs with the case's rtol/atol,
as on the CPU. Cases are merged into one model per opset group (names prefixed c<N>_, inputs
made static from the test data) so each group costs one compile and one kernels build; a group
that fails to compile or run is bisected down to the failing cases.

usage: run_onnx_nodes.py --drt build/bin/drt [--filter REGEX] [--group N] [--precision fp32|tf32]
                         [--gpu --arch sm_XX] [--json OUT.json] [--keep] [-v]
       run_onnx_nodes.py --drt ... --export DIR        (merged groups, inputs and references)
       run_onnx_nodes.py --drt ... --from DIR [--gpu --arch sm_XX] [--max-groups N]
--gpu runs the cases on this machine's GPU through the real driver. GPU machines may lack the
onnx package: tests/gpu/prepare.sh exports the groups into the kit and tests/gpu/run.sh runs
them with --from (numpy only); groups are then not bisected, a group error fails its cases.
The last line is `N passed, M failed, K expected failures` (XFAIL: known deviations, listed with
their reasons in XFAIL below; HOST: nodes without a CUDA kernel, which run on the CPU
inside the GPU run, are listed but pass when their values are right). Exit status 1 on a failure.
tf32 rounds matmul/conv inputs to 10 mantissa bits, beyond most node tests' tolerances: use it
with --filter to look at particular ops.
"""
import argparse
import copy
import json
import os
import re
import shutil
import sys
import time
from types import SimpleNamespace

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "conformance"))
import run_emu as re_mod  # noqa: E402
from compare import compare  # noqa: E402  (tests/conformance/compare.py: numpy only)

# onnx and tests/conformance/run_backend.py are imported only where cases are collected and
# merged: a --from run (GPU machines without the onnx package) needs numpy alone
onnx = rb = None


def import_onnx():
    global onnx, rb
    import onnx as onnx_mod  # noqa: PLC0415
    import onnx.numpy_helper  # noqa: F401,PLC0415
    import run_backend as rb_mod  # noqa: PLC0415
    onnx, rb = onnx_mod, rb_mod


def log(msg):
    print(msg, flush=True)


def default_opset(model):
    for o in model.opset_import:
        if o.domain in ("", "ai.onnx"):
            return o.version
    return 1


def static_type(vi, arr):
    """value info `vi` with the dims of `arr` (node tests may leave dims symbolic)."""
    v = copy.deepcopy(vi)
    tt = v.type.tensor_type
    del tt.shape.dim[:]
    for d in arr.shape:
        tt.shape.dim.add().dim_value = int(d)
    return v


CONST_RE = re.compile(r"'(c\d+_[^']*)'\)? must be a compile-time constant")


def rename_node(n, ren):
    """Prefixes every value name of node n, inside its subgraphs too (If/Loop/Scan bodies read
    values of the enclosing graph by name)."""
    n.input[:] = [ren(x) for x in n.input]
    n.output[:] = [ren(x) for x in n.output]
    for a in n.attribute:
        subs = [a.g] if a.type == onnx.AttributeProto.GRAPH else list(a.graphs)
        for sg in subs:
            for vi in list(sg.input) + list(sg.output) + list(sg.value_info):
                vi.name = ren(vi.name)
            for t in sg.initializer:
                t.name = ren(t.name)
            for sn in sg.node:
                rename_node(sn, ren)


def merge(cases, opset, consts):
    """One model holding every case of the group; returns (model, {input name: array},
    {case index: [(output name, reference array)]}). Inputs named in `consts` (prefixed names of
    inputs the compiler needs as constants: axes, shapes, pads, ...; `drt run MODEL.onnx` on the
    CPU folds every given input) become initializers."""
    g = onnx.GraphProto(name="onnx_nodes")
    feeds, refs = {}, {}
    ir = 3
    for ci, (case, model, (ins, outs)) in enumerate(cases):
        p = "c%d_" % ci
        ren = lambda s: p + s if s else s  # noqa: E731
        ir = max(ir, model.ir_version)
        src = model.graph
        inits = {t.name for t in src.initializer}
        real = [vi for vi in src.input if vi.name not in inits]
        if len(real) != len(ins):
            raise ValueError("%s: %d inputs, %d arrays" % (case.name, len(real), len(ins)))
        for vi, arr in zip(real, ins):
            if ren(vi.name) in consts:
                g.initializer.append(onnx.numpy_helper.from_array(np.asarray(arr), ren(vi.name)))
                continue
            v = static_type(vi, arr)
            v.name = ren(vi.name)
            g.input.append(v)
            feeds[v.name] = arr
        for t in src.initializer:
            t2 = copy.deepcopy(t)
            t2.name = ren(t.name)
            g.initializer.append(t2)
        for k, n in enumerate(src.node):
            n2 = copy.deepcopy(n)
            n2.name = ren(n.name or "n%d" % k)
            rename_node(n2, ren)
            g.node.append(n2)
        refs[ci] = []
        for vo, arr in zip(src.output, outs):
            o = copy.deepcopy(vo)
            o.name = ren(vo.name)
            g.output.append(o)
            refs[ci].append((o.name, arr))
    m = onnx.helper.make_model(g, opset_imports=[onnx.helper.make_opsetid("", opset)])
    m.ir_version = ir
    return m, feeds, refs


# Known deviations on the CUDA backend, reported as XFAIL (not counted) with the reason.
XFAIL = {
    "test_attention_4d_fp16": "fp16 attention on tensor cores rounds the probabilities to fp16 before P.V "
                              "(as FlashAttention): 1-2 fp16 ulps off in 1-2 of 192 values, the test allows rtol 1e-3",
    "test_attention_4d_causal_fp16": "as test_attention_4d_fp16",
}


class GpuEnv(re_mod.Env):
    """The real driver (--gpu): drt compile for the device's arch, drt run --backend cuda as is."""

    def __init__(self, a):  # noqa: D107 (no mock, no kernels .so)
        import tempfile
        self.drt = os.path.abspath(a.drt)
        self.arch, self.timeout, self.keep = a.arch, a.timeout, a.keep
        self.tmp = tempfile.mkdtemp(prefix="drt_nodes_", dir=a.work or None)

    def cuda_env(self, kernels):
        return None


class Runner:
    def __init__(self, E, precision, workdir, verbose, gpu=False):
        self.E, self.precision, self.work, self.verbose, self.gpu = E, precision, workdir, verbose, gpu
        self.results = []  # (name, ok, note)
        self.n = self.xfail = self.same = 0
        self.last_key = None

    def new_dir(self):
        self.n += 1
        d = os.path.join(self.work, "g%d" % self.n)
        os.makedirs(d, exist_ok=True)
        return d

    def prepare(self, cases, opset, d):
        """Merges cases into d/model.onnx (inputs the compiler needs as constants become
        initializers) and writes the inputs; returns (inputs [(name, path)], specs, error). A spec
        is (case name, rtol, atol, [(output name, reference array)]). The last compile is kept
        as d/model.plan (error None: it compiled)."""
        mpath, plan = os.path.join(d, "model.onnx"), os.path.join(d, "model.plan")
        consts = set()
        for _ in range(64):
            try:
                model, feeds, refs = merge(cases, opset, consts)
            except ValueError as ex:
                return [], [], "merge: %s" % ex
            onnx.save(model, mpath)
            why, _ = self.E.compile(mpath, plan, self.precision)
            m = CONST_RE.search(why or "")
            if not m:
                break
            name = m.group(1)
            if name in feeds and name not in consts:
                consts.add(name)
                continue
            # a value computed from inputs (a window length, pads from a shape): every integer
            # input of that case becomes a constant, as the CPU run's specialization does
            pre = name.split("_", 1)[0] + "_"
            more = {k for k, v in feeds.items() if k.startswith(pre) and np.asarray(v).dtype.kind in "biu"}
            if not more - consts:  # then every small input of the case, as `drt run` specializes
                more = {k for k, v in feeds.items() if k.startswith(pre) and np.asarray(v).size <= 256}
            if not more - consts:
                break
            consts |= more
        inputs = []
        for name, arr in feeds.items():
            f = os.path.join(d, re_mod.safe_name(name) + ".npy")
            np.save(f, arr)
            inputs.append((name, f))
        specs = [(c.name, c.rtol, c.atol, [(n, rb.to_array(r)) for n, r in refs[ci]])
                 for ci, (c, _, _) in enumerate(cases)]
        return inputs, specs, why

    def execute(self, d, inputs, specs, compiled):
        """Compiles (unless compiled) and runs d/model.onnx on CUDA, checks every case; returns the
        error of the group as a whole (compile, kernels build, run), None when it ran."""
        mpath, plan = os.path.join(d, "model.onnx"), os.path.join(d, "model.plan")
        why = None
        if not compiled:
            why, _ = self.E.compile(mpath, plan, self.precision)
        so = None
        if not why and not self.gpu:
            so, why, _ = self.E.kernels(plan)
        host = self.E.host_nodes(plan) if not why else {}
        out = os.path.join(d, "cuda")
        if not why:
            why, _ = self.E.run(plan, inputs, "cuda", out, so)
        if why:
            return why
        for ci, (cname, rtol, atol, outs) in enumerate(specs):
            fails = []
            for name, ref in outs:
                f = os.path.join(out, re_mod.safe_name(name) + ".npy")
                if not os.path.isfile(f):
                    fails.append("output %s missing" % name)
                    continue
                msg = compare(name, np.load(f), ref, rtol, atol)
                if msg:
                    fails.append(msg)
            hn = sorted(set(r for n, r in host.items() if n.startswith("c%d_" % ci)))
            note = "; ".join(fails)[:300] + ("  HOST: " + "; ".join(hn)[:160] if hn else "")
            if fails and cname in XFAIL:
                self.xfail += 1
                log("XFAIL %-51s %s (expected: %s)" % (cname, note[:120], XFAIL[cname]))
                continue
            self.results.append((cname, not fails, note))
            if fails:
                log("FAIL %-52s %s" % (cname, note))
            elif self.verbose or hn:
                log("ok   %-52s %s" % (cname, note))
        return None

    def fail(self, names, why):
        for nm in names:
            self.results.append((nm, False, why))
            log("FAIL %-52s %s" % (nm, why[:300]))
        # the same error group after group (no GPU, a broken driver): stop
        key = re.sub(r"/\S+", "", why)[:80]
        self.same = self.same + 1 if key == self.last_key else 1
        self.last_key = key
        if self.same >= 5:
            raise RuntimeError("5 groups in a row failed with: %s" % why[:300])

    def run_group(self, cases, opset):
        """Cases (list of (Case, model, data set)) as one model; bisects on a group error."""
        d = self.new_dir()
        inputs, specs, why = self.prepare(cases, opset, d)
        if not why:
            why = self.execute(d, inputs, specs, compiled=True)
        if not why:
            return
        if len(cases) > 1:
            if self.verbose:
                log("  group of %d failed (%s): bisecting" % (len(cases), why[:120]))
            h = len(cases) // 2
            self.run_group(cases[:h], opset)
            self.run_group(cases[h:], opset)
        else:
            self.fail([cases[0][0].name], why)

    def export_group(self, cases, opset, root):
        """Writes a prepared group under root (run later with --from, without onnx)."""
        d = os.path.join(root, "g%03d" % (len(os.listdir(root)) + 1))
        os.makedirs(d)
        inputs, specs, why = self.prepare(cases, opset, d)
        if why and len(cases) > 1:
            shutil.rmtree(d)
            h = len(cases) // 2
            self.export_group(cases[:h], opset, root)
            self.export_group(cases[h:], opset, root)
            return
        if why:
            shutil.rmtree(d)
            log("not exported (%s): %s" % (cases[0][0].name, why[:200]))
            return
        if os.path.exists(os.path.join(d, "model.plan")):  # rebuilt for the device's arch at run time
            os.remove(os.path.join(d, "model.plan"))
        meta = {"opset": opset, "inputs": [[n, os.path.basename(f)] for n, f in inputs], "cases": []}
        for ci, (cname, rtol, atol, outs) in enumerate(specs):
            ref_files = []
            for k, (name, ref) in enumerate(outs):
                rf = "ref_%d_%d.npy" % (ci, k)
                np.save(os.path.join(d, rf), ref)
                ref_files.append([name, rf])
            meta["cases"].append({"name": cname, "rtol": rtol, "atol": atol, "outputs": ref_files})
        with open(os.path.join(d, "meta.json"), "w") as f:
            json.dump(meta, f)

    def run_exported(self, d):
        with open(os.path.join(d, "meta.json")) as f:
            meta = json.load(f)
        inputs = [(n, os.path.join(d, fn)) for n, fn in meta["inputs"]]
        specs = [(c["name"], c["rtol"], c["atol"], [(n, np.load(os.path.join(d, fn))) for n, fn in c["outputs"]])
                 for c in meta["cases"]]
        run_dir = self.new_dir()
        for fn in os.listdir(d):
            if fn == "model.onnx" or fn.endswith(".npy"):
                os.symlink(os.path.join(os.path.abspath(d), fn), os.path.join(run_dir, fn))
        inputs = [(n, os.path.join(run_dir, os.path.basename(p))) for n, p in inputs]
        why = self.execute(run_dir, inputs, specs, compiled=False)
        if why:
            self.fail([c["name"] for c in meta["cases"]], why)


def collect(a):
    """{opset: [(Case, model, first data set)]} of the supported, non-excluded node tests."""
    import_onnx()
    supported = rb.query_drt_ops(os.path.abspath(a.drt))
    excludes = rb.load_excludes(rb.DEFAULT_EXCLUDE)
    todo, skipped = {}, 0
    for c in rb.collect_cases():
        if c.kind != "node" or (a.filter and not re.search(a.filter, c.name)):
            continue
        try:
            m = rb.load_model(c)
        except Exception:  # noqa: BLE001 (reported as skipped, as the CPU run does)
            skipped += 1
            continue
        _, _, reasons = rb.classify(m, supported)
        # graph inputs/outputs numpy cannot hold (bfloat16, float8, int4, ...) travel as .pb
        # files in the CPU run; the exported GPU groups are .npy only, so those cases stay there
        io = list(m.graph.input) + list(m.graph.output)
        if any(vi.type.tensor_type.elem_type not in rb.NPY_ELEM_TYPES for vi in io):
            reasons = reasons or ["I/O dtype without a .npy form"]
        if reasons or rb.match_exclude(excludes, c.name):
            skipped += 1
            continue
        sets = rb.load_data_sets(c, m)
        if not sets:
            skipped += 1
            continue
        todo.setdefault(default_opset(m), []).append((c, m, sets[0]))
    return todo, skipped


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--drt", required=True)
    ap.add_argument("--mock")
    ap.add_argument("--work")
    ap.add_argument("--filter", help="regex on test names (e.g. 'conv|resize')")
    ap.add_argument("--group", type=int, default=60, help="cases per merged model")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "tf32"])
    ap.add_argument("--arch", default="sm_90")
    ap.add_argument("--timeout", type=int, default=1800)
    ap.add_argument("--gpu", action="store_true", help="run on the GPU of this machine (no emulator)")
    ap.add_argument("--export", metavar="DIR", help="write the merged groups (models, inputs, references) "
                    "into DIR instead of running them")
    ap.add_argument("--from", dest="from_dir", metavar="DIR", help="run groups written by --export "
                    "(needs numpy, not onnx)")
    ap.add_argument("--max-groups", type=int, default=0, help="with --from: run only the first N groups")
    ap.add_argument("--json")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args()
    t0 = time.perf_counter()
    if a.gpu:
        E = GpuEnv(a)
    else:
        E = re_mod.Env(SimpleNamespace(drt=a.drt, work=a.work, keep=a.keep, arch=a.arch, mock=a.mock,
                                       timeout=a.timeout, nodecheck=False))
    R = Runner(E, a.precision, E.tmp, a.verbose, a.gpu)
    where = "real" if a.gpu else "emulated"
    try:
        if a.from_dir:
            if not os.path.isdir(a.from_dir):
                raise SystemExit("--from: %s is not a folder (tests/gpu/prepare.sh writes KIT/onnx_nodes)" % a.from_dir)
            groups = sorted(g for g in os.listdir(a.from_dir) if os.path.isfile(os.path.join(a.from_dir, g, "meta.json")))
            if a.max_groups:
                groups = groups[:a.max_groups]
            log("%d exported groups to run on the %s CUDA backend (%s)" % (len(groups), where, a.precision))
            for gname in groups:
                R.run_exported(os.path.join(a.from_dir, gname))
        else:
            todo, skipped = collect(a)
            n = sum(len(v) for v in todo.values())
            if a.export:
                os.makedirs(a.export, exist_ok=True)
                if os.listdir(a.export):
                    raise SystemExit("--export: %s is not empty" % a.export)
                log("exporting %d node tests (%d skipped as on the CPU run) into %s" % (n, skipped, a.export))
            else:
                log("%d node tests to run on the %s CUDA backend (%s), %d skipped as on the CPU run" %
                    (n, where, a.precision, skipped))
            for opset in sorted(todo):
                cs = todo[opset]
                for i in range(0, len(cs), a.group):
                    if a.export:
                        R.export_group(cs[i:i + a.group], opset, a.export)
                    else:
                        R.run_group(cs[i:i + a.group], opset)
                log("opset %d: %d cases done (%.0f s)" % (opset, len(cs), time.perf_counter() - t0))
            if a.export:
                log("exported %d groups (%.0f s)" % (len(os.listdir(a.export)), time.perf_counter() - t0))
                return 0
    except RuntimeError as ex:
        log("aborted: %s" % ex)
        R.results.append(("(run)", False, str(ex)))
    finally:
        E.cleanup()
    passed = sum(1 for r in R.results if r[1])
    failed = len(R.results) - passed
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"precision": a.precision, "gpu": a.gpu, "passed": passed, "failed": failed,
                       "xfail": R.xfail, "total": len(R.results),
                       "cases": [{"name": r[0], "ok": r[1], "note": r[2]} for r in R.results]}, f, indent=1)
    log("%d passed, %d failed, %d expected failures (%.0f s)" % (passed, failed, R.xfail, time.perf_counter() - t0))
    return 1 if failed or not passed else 0


if __name__ == "__main__":
    sys.exit(main())
