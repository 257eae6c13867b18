#!/usr/bin/env python3
"""Models exported in half precision: every float initializer, constant, value and Cast target of
a fixture rewritten to float16 or bfloat16 (what `model.half()` / `model.to(torch.bfloat16)`
before export, or an ONNX float16 converter, produce), run by `drt run` on the CPU backend with
inputs and outputs of the model's own type, against onnxruntime.

  float16   onnxruntime runs the float16 graph itself.
  bfloat16  onnxruntime has few bfloat16 kernels, so the reference is the float32 graph with the
            same (bfloat16-exact) weights and a Cast to bfloat16 and back after every float
            value: float32 arithmetic, every tensor rounded to bfloat16, which is what the ONNX
            semantics of a bfloat16 graph ask of an implementation that accumulates in float32.
            (onnx.reference computes in bfloat16 and is 0.2 off float32 on a small UNet.)

Resize/Upsample scales stay float32 (the spec requires it). Inputs are the fixture's seeded random
inputs rounded to the type. Bounds (rel L2): see verdict().

With --cuda-emu, each model also compiles for CUDA (--precision of its type) and runs on the
emulated GPU (tests/cuda_emu: the generated kernels compiled for the CPU, the mock driver and
cuBLASLt), against `drt run` on the CPU backend of the same plan, no NaN/Inf (bounds: verdict()).

usage: tests/models/test_native_precision.py --drt build/bin/drt [--filter RE] [--types fp16,bf16]
                                             [--cuda-emu [--mock LIB] [--emu-filter RE]]
"""
import argparse, glob, json, os, re, subprocess, sys, tempfile
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "fixtures")
# one of each family and exporter: transformer (torchscript / dynamo), conv UNet, diffusers UNet, VAE
DEFAULT = ["dit_student_op17", "dit_teacher_op23", "diffusers_pixart_op23", "diffusers_unet2dcond_op17",
           "unet_op23", "vae_decoder_op17", "zoo_sd3_op23", "zoo_flux_op23", "zoo_sdxl_unet_op17"]
TOL = 1e-2


def to_half(model, elem):
    """The model with every float32 tensor, value and Cast target turned into `elem`."""
    import onnx
    from onnx import TensorProto as TP, numpy_helper
    import ml_dtypes
    np_t = {TP.FLOAT16: np.float16, TP.BFLOAT16: ml_dtypes.bfloat16}[elem]

    def tensor(t):
        if t.data_type != TP.FLOAT:
            return
        t.CopyFrom(half_tensor(t.name, elem, numpy_helper.to_array(t).astype(np_t)))

    def walk(g):
        keep = set()  # Resize / Upsample scales are float32 by the spec
        for n in g.node:
            if n.op_type == "Resize" and len(n.input) > 2:
                keep.add(n.input[2])
            if n.op_type == "Upsample" and len(n.input) > 1:
                keep.add(n.input[1])
        for t in g.initializer:
            if t.name not in keep:
                tensor(t)
        for vi in list(g.input) + list(g.output) + list(g.value_info):
            if vi.type.tensor_type.elem_type == TP.FLOAT and vi.name not in keep:
                vi.type.tensor_type.elem_type = elem
        for n in g.node:
            for a in n.attribute:
                if a.type == onnx.AttributeProto.TENSOR and not (n.output and n.output[0] in keep):
                    tensor(a.t)
                elif a.type == onnx.AttributeProto.GRAPH:
                    walk(a.g)
                elif n.op_type == "Cast" and a.name == "to" and a.i == TP.FLOAT:
                    a.i = elem

    m = onnx.ModelProto()
    m.CopyFrom(model)
    walk(m.graph)
    onnx.checker.check_model(m)
    return m


def rounding_reference(half_model):
    """float32 graph of a bfloat16 model, with every float value rounded to bfloat16 (Cast pairs)."""
    import onnx
    from onnx import TensorProto as TP, numpy_helper, helper
    m = onnx.ModelProto()
    m.CopyFrom(half_model)
    g = m.graph
    for t in g.initializer:
        if t.data_type == TP.BFLOAT16:
            t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float32), t.name))
    nodes = []
    for n in g.node:
        for a in n.attribute:
            if a.type == onnx.AttributeProto.TENSOR and a.t.data_type == TP.BFLOAT16:
                a.t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(a.t).astype(np.float32), a.t.name))
            if n.op_type == "Cast" and a.name == "to" and a.i == TP.BFLOAT16:
                a.i = TP.FLOAT
        nodes.append(n)
    for vi in list(g.input) + list(g.output) + list(g.value_info):
        if vi.type.tensor_type.elem_type == TP.BFLOAT16:
            vi.type.tensor_type.elem_type = TP.FLOAT
    # which values are float: ask shape inference on the float32 graph
    inferred = onnx.shape_inference.infer_shapes(m)
    is_float = {vi.name for vi in list(inferred.graph.value_info) + list(inferred.graph.output)
                if vi.type.tensor_type.elem_type == TP.FLOAT}
    outs = {o.name for o in g.output}
    new = []
    for n in nodes:
        rename = {}
        for i, o in enumerate(n.output):
            if o in is_float and n.op_type not in ("Shape", "Constant"):
                rename[o] = o + "__f32"
                n.output[i] = rename[o]
        new.append(n)
        for o, r in rename.items():
            new.append(helper.make_node("Cast", [r], [o + "__bf16"], to=TP.BFLOAT16))
            new.append(helper.make_node("Cast", [o + "__bf16"], [o], to=TP.FLOAT))
    del g.node[:]
    g.node.extend(new)
    del g.value_info[:]
    return m


def rel_l2(a, b):
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def half_tensor(name, elem, a):
    """A TensorProto of type elem (FLOAT16 / BFLOAT16) holding a (already of that numpy type)."""
    import onnx
    return onnx.helper.make_tensor(name, elem, a.shape, a.view(np.uint16).tobytes(), raw=True)


def write_pb(path, name, a, elem=None):
    from onnx import TensorProto as TP
    with open(path, "wb") as f:
        f.write(half_tensor(name, TP.BFLOAT16 if elem is None else elem, a).SerializeToString())


def read_pb(path):
    import onnx
    from onnx import numpy_helper
    t = onnx.TensorProto()
    with open(path, "rb") as f:
        t.ParseFromString(f.read())
    return numpy_helper.to_array(t)


def safe(name):
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


def emulated_cuda(emu, d, kind, inputs, shapes, names):
    """Compiles d/model.onnx for CUDA and runs it on the emulated GPU and on the CPU backend:
    ({output: (GPU output, CPU output)}, None) or (None, error)."""
    plan = os.path.join(d, "cuda.plan")
    why, _ = emu.compile(os.path.join(d, "model.onnx"), plan, kind, shapes)
    if why:
        return None, why
    so, why, _ = emu.kernels(plan)
    if why:
        return None, why
    extra = ["--output-format", "pb"] if kind == "bf16" else []
    outs = {}
    for backend in ("cuda", "cpu"):
        od = os.path.join(d, "emu_" + backend)
        why, _ = emu.run(plan, inputs, backend, od, so if backend == "cuda" else None, extra=extra)
        if why:
            return None, why
        outs[backend] = [read_pb(os.path.join(od, safe(n) + ".pb")) if kind == "bf16"
                         else np.load(os.path.join(od, safe(n) + ".npy")) for n in names]
    return {n: (c, p) for n, c, p in zip(names, outs["cuda"], outs["cpu"])}, None


def run_case(drt, fixture, kind, work, emu=None):
    """Per output: {vs_ref, drt_truth, ref_truth[, gpu_cpu, gpu_truth]} (rel L2), or an error string."""
    import onnx, onnxruntime as ort, ml_dtypes
    from onnx import TensorProto as TP
    src = os.path.join(FIXTURES, fixture)
    with open(os.path.join(src, "meta.json")) as f:
        meta = json.load(f)
    base = onnx.load(os.path.join(src, "model.onnx"))
    elem = TP.FLOAT16 if kind == "fp16" else TP.BFLOAT16
    np_t = np.float16 if kind == "fp16" else ml_dtypes.bfloat16
    half = to_half(base, elem)
    d = os.path.join(work, "%s_%s" % (fixture, kind))
    os.makedirs(os.path.join(d, "out"), exist_ok=True)
    model_path = os.path.join(d, "model.onnx")
    onnx.save(half, model_path)
    feeds, inputs, shapes = {}, [], []
    args = [drt, "run", model_path, "--output-dir", os.path.join(d, "out")]
    if kind == "bf16":
        args += ["--output-format", "pb"]
    for inp in meta["inputs"]:
        name = inp["name"]
        a = np.load(os.path.join(src, "inputs", inp["file"]))
        floating = a.dtype == np.float32
        if floating:
            a = a.astype(np_t)  # the half model takes its floats in its own type; integers stay
        feeds[name] = a
        p = os.path.join(d, "in_" + safe(name) + (".pb" if kind == "bf16" and floating else ".npy"))
        if kind == "bf16" and floating:
            write_pb(p, name, a)
        else:
            np.save(p, a)
        args += ["--input", "%s=%s" % (name, p)]
        inputs.append((name, p))
        if a.ndim:
            shapes.append("%s=%s" % (name, "x".join(str(n) for n in a.shape)))
    r = subprocess.run(args, capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        return "drt run failed (%d): %s" % (r.returncode, r.stderr.strip().splitlines()[-1] if r.stderr.strip() else "")
    so = ort.SessionOptions()
    so.log_severity_level = 3
    if kind == "fp16":
        sess = ort.InferenceSession(model_path, so, providers=["CPUExecutionProvider"])
        ref = sess.run(None, feeds)
    else:
        sess = ort.InferenceSession(rounding_reference(half).SerializeToString(), so,
                                    providers=["CPUExecutionProvider"])
        ref = sess.run(None, {k: v.astype(np.float32) if v.dtype == np_t else v for k, v in feeds.items()})
    names = [o.name for o in half.graph.output]
    files = {o["name"]: o["file"] for o in meta["outputs"]}
    gpu, why = emulated_cuda(emu, d, kind, inputs, shapes, names) if emu is not None else (None, None)
    if why:
        return "emulated GPU: " + why
    res = {}
    for name, want in zip(names, ref):
        path = os.path.join(d, "out", safe(name) + (".npy" if kind == "fp16" else ".pb"))
        got = np.load(path) if kind == "fp16" else read_pb(path)
        if got.dtype != np.dtype(np_t):
            return "output %s has dtype %s, not %s" % (name, got.dtype, np.dtype(np_t))
        if not np.all(np.isfinite(got.astype(np.float32))):
            return "output %s has NaN/Inf" % name
        truth = np.load(os.path.join(src, "expected", files[name]))  # the float32 model's output
        e = {"vs_ref": rel_l2(got, want), "drt_truth": rel_l2(got, truth), "ref_truth": rel_l2(want, truth)}
        if gpu is not None:
            c, p = gpu[name]
            if not np.all(np.isfinite(c.astype(np.float32))):
                return "output %s has NaN/Inf on the emulated GPU" % name
            e.update(gpu_cpu=rel_l2(c, p), gpu_truth=rel_l2(c, truth))
        res[name] = e
    return res


def verdict(kind, e):
    """One output. fp16: within 1e-2 of onnxruntime's float16 run (the emulated GPU: of the CPU
    backend). bf16: two valid bfloat16 executions differ by the model's own sensitivity to where
    values are rounded (diffusers' UNet: ~1.8e-2 between ours, which keeps fused chains in
    float32, and the per-op reference), so the bound is on accuracy: the distance to the float32
    model (same weights before rounding) is at most 1.25x the reference's + 1e-3 (`bound`), and
    the two agree within max(5e-2, bound); the emulated GPU is held to the same against the CPU
    backend (which computes such models in float32: passes/half_promote.h)."""
    if kind == "fp16":
        return e["vs_ref"] <= TOL and e.get("gpu_cpu", 0.0) <= TOL
    bound = 1.25 * e["ref_truth"] + 1e-3
    agree = max(5e-2, bound)
    ok = e["drt_truth"] <= bound and e["vs_ref"] <= agree
    if "gpu_cpu" in e:
        ok = ok and e["gpu_truth"] <= bound and e["gpu_cpu"] <= agree
    return ok


def write_safetensors(path, tensors):
    """Minimal safetensors writer (F16 / BF16 / F32), so the test needs no safetensors package."""
    import ml_dtypes
    codes = {np.dtype(np.float16): "F16", np.dtype(ml_dtypes.bfloat16): "BF16", np.dtype(np.float32): "F32"}
    header, blobs, off = {}, [], 0
    for name, a in tensors.items():
        b = np.ascontiguousarray(a).tobytes()
        header[name] = {"dtype": codes[a.dtype], "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(len(h).to_bytes(8, "little") + h + b"".join(blobs))


def refit_case(drt, fixture, kind, work):
    """A half model's plan refitted with perturbed weights equals the plan compiled from them (the
    weight Casts of half-promote are replayed by the refit): from safetensors, from the ONNX export,
    and a --partial refit that leaves out the largest weight (recovered by narrowing the plan's
    widened copy). Weights the optimized graph absorbed (a refit refuses to change them) keep their
    values. Returns the max abs difference over the three, or an error."""
    import onnx, ml_dtypes
    from onnx import TensorProto as TP, numpy_helper
    src = os.path.join(FIXTURES, fixture)
    with open(os.path.join(src, "meta.json")) as f:
        meta = json.load(f)
    elem = TP.FLOAT16 if kind == "fp16" else TP.BFLOAT16
    np_t = np.float16 if kind == "fp16" else ml_dtypes.bfloat16
    d = os.path.join(work, "refit_%s_%s" % (fixture, kind))
    os.makedirs(d, exist_ok=True)
    half = to_half(onnx.load(os.path.join(src, "model.onnx")), elem)
    onnx.save(half, os.path.join(d, "a.onnx"))

    def drt_ok(*a):
        r = subprocess.run([drt] + list(a), capture_output=True, text=True, timeout=600)
        return r if r.returncode == 0 else None, r.stderr.strip()[-300:]

    plan = os.path.join(d, "a.plan")
    r, err = drt_ok("compile", os.path.join(d, "a.onnx"), "-o", plan)
    if not r:
        return "compile: " + err
    rng = np.random.default_rng(7)
    new = {}
    for t in half.graph.initializer:
        a = numpy_helper.to_array(t)
        if a.dtype == np.dtype(np_t) and a.size > 1:
            new[t.name] = (a.astype(np.float32) * (1 + 0.1 * rng.standard_normal(a.shape))).astype(np_t)
    for attempt in range(2):
        write_safetensors(os.path.join(d, "w.safetensors"), new)
        r, err = drt_ok("refit", plan, "--weights", os.path.join(d, "w.safetensors"), "-o", os.path.join(d, "r.plan"))
        if r:
            break
        baked = set(re.findall(r"'([^']+)' changed, but the optimized graph depends", err))
        if not baked or attempt:
            return "refit: " + err
        for name in baked:  # absorbed into the code: a refit rightly refuses them
            new.pop(name, None)
    # the partial refit leaves the largest modified weight out: the plan holds it only widened
    keep = max(new, key=lambda k: new[k].size)
    partial = {k: v for k, v in new.items() if k != keep}
    write_safetensors(os.path.join(d, "p.safetensors"), partial)
    base = onnx.ModelProto()
    base.CopyFrom(half)

    def with_weights(ws, path):
        m = onnx.ModelProto()
        m.CopyFrom(base)
        for t in m.graph.initializer:
            if t.name in ws:
                t.CopyFrom(half_tensor(t.name, elem, ws[t.name]))
        onnx.save(m, path)

    with_weights(new, os.path.join(d, "b.onnx"))
    with_weights(partial, os.path.join(d, "c.onnx"))
    for args in (["refit", plan, "--weights", os.path.join(d, "b.onnx"), "-o", os.path.join(d, "o.plan")],
                 ["refit", plan, "--weights", os.path.join(d, "p.safetensors"), "--partial", "-o",
                  os.path.join(d, "q.plan")],
                 ["compile", os.path.join(d, "b.onnx"), "-o", os.path.join(d, "b.plan")],
                 ["compile", os.path.join(d, "c.onnx"), "-o", os.path.join(d, "c.plan")]):
        r, err = drt_ok(*args)
        if not r:
            return "%s: %s" % (args[0], err)
    outs = {}
    for p in ("a.plan", "r.plan", "o.plan", "q.plan", "b.plan", "c.plan"):
        od = os.path.join(d, "out_" + p)
        os.makedirs(od, exist_ok=True)
        args = ["run", os.path.join(d, p), "--output-dir", od, "--output-format", "pb"]
        for inp in meta["inputs"]:
            a = np.load(os.path.join(src, "inputs", inp["file"]))
            ip = os.path.join(d, "in_" + safe(inp["name"]) + ".pb")
            if a.dtype == np.float32:
                write_pb(ip, inp["name"], a.astype(np_t), elem)
            else:
                ip = ip[:-3] + ".npy"
                np.save(ip, a)
            args += ["--input", "%s=%s" % (inp["name"], ip)]
        r, err = drt_ok(*args)
        if not r:
            return "run: " + err
        outs[p] = [read_pb(os.path.join(od, safe(o.name) + ".pb")).astype(np.float64) for o in half.graph.output]
    if all(np.array_equal(x, y) for x, y in zip(outs["a.plan"], outs["b.plan"])):
        return "the perturbed weights do not change the output"
    pairs = [("r.plan", "b.plan"), ("o.plan", "b.plan"), ("q.plan", "c.plan")]  # safetensors, ONNX, partial
    return max(float(np.abs(x - y).max()) for a, b in pairs for x, y in zip(outs[a], outs[b]))


def cfg_case(drt, fixture, kind, mode, work):
    """Folded classifier-free guidance on a half model: a 3-step generation of the half plan against
    the float32 plan's (same seed). The combine runs before the output Cast back to the half
    type, so every mode (APG's float32 momentum state included) works. Returns rel L2 or an error."""
    import onnx, ml_dtypes
    from onnx import TensorProto as TP
    src = os.path.join(FIXTURES, fixture)
    with open(os.path.join(src, "meta.json")) as f:
        meta = json.load(f)
    elem = TP.FLOAT16 if kind == "fp16" else TP.BFLOAT16
    np_t = np.float16 if kind == "fp16" else ml_dtypes.bfloat16
    d = os.path.join(work, "cfg_%s_%s_%s" % (fixture, kind, safe(mode)))
    os.makedirs(d, exist_ok=True)
    onnx.save(to_half(onnx.load(os.path.join(src, "model.onnx")), elem), os.path.join(d, "h.onnx"))
    outs = []
    for half in (True, False):
        model = os.path.join(d, "h.onnx") if half else os.path.join(src, "model.onnx")
        plan = os.path.join(d, "h.plan" if half else "f.plan")
        r = subprocess.run([drt, "compile", model, "-o", plan, "--cfg-scale", "3", "--cfg-uncond",
                            "encoder_hidden_states=zeros", "--cfg-mode", mode], capture_output=True, text=True)
        if r.returncode:
            return "compile: " + r.stderr.strip()[-300:]
        args = [drt, "generate", plan, "--schedule", "flow-euler", "--steps", "3", "--seed", "1",
                "-o", os.path.join(d, "g.npy" if half else "f.npy")]
        for inp in meta["inputs"]:
            if inp["name"] in ("sample", "timestep"):
                continue
            a = np.load(os.path.join(src, "inputs", inp["file"]))
            if half:
                if kind == "bf16":
                    return "bf16 generation inputs need .pb files: not covered"
                a = a.astype(np_t)
            ip = os.path.join(d, ("h_" if half else "f_") + inp["file"])
            np.save(ip, a)
            args += ["--input", "%s=%s" % (inp["name"], ip)]
        r = subprocess.run(args, capture_output=True, text=True)
        if r.returncode:
            return "generate: " + (r.stdout + r.stderr).strip()[-300:]
        outs.append(np.load(args[args.index("-o") + 1]).astype(np.float64))
    return rel_l2(outs[0], outs[1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--drt", required=True)
    ap.add_argument("--filter")
    ap.add_argument("--types", default="fp16,bf16")
    ap.add_argument("--cuda-emu", action="store_true",
                    help="also run on the emulated GPU (skipped when DRT_TEST_NO_EMU is set)")
    ap.add_argument("--emu-filter", default=".", help="regex: fixtures that also run on the emulated GPU")
    ap.add_argument("--mock", help="mock libcuda/cuBLASLt .so (default: BUILD/lib/libdrt_mock_cuda.so, else built)")
    args = ap.parse_args()
    emu = None
    if args.cuda_emu and os.environ.get("DRT_TEST_NO_EMU"):
        print("DRT_TEST_NO_EMU is set: the emulated GPU leg is skipped")
    elif args.cuda_emu:
        sys.path.insert(0, os.path.join(HERE, "..", "cuda_emu"))
        import run_emu
        emu = run_emu.Env(argparse.Namespace(drt=args.drt, work=None, keep=False, arch="compute_90", mock=args.mock,
                                             timeout=900, nodecheck=False))
    fixtures = [f for f in DEFAULT if not args.filter or re.search(args.filter, f)]
    kinds = [k for k in args.types.split(",") if k]
    passed = failed = 0
    with tempfile.TemporaryDirectory(prefix="drt_native_") as work:
        for fx in fixtures:
            for kind in kinds:
                res = run_case(args.drt, fx, kind, work, emu if re.search(args.emu_filter, fx) else None)
                if isinstance(res, str):
                    ok, text = False, "FAIL  " + res
                else:
                    ok = all(verdict(kind, e) for e in res.values())
                    w = {k: max(e[k] for e in res.values()) for k in next(iter(res.values()))}
                    text = "vs onnxruntime %.2e   vs float32: drt %.2e, onnxruntime %.2e" % (
                        w["vs_ref"], w["drt_truth"], w["ref_truth"])
                    if "gpu_cpu" in w:
                        text += "   emulated GPU: vs CPU %.2e, vs float32 %.2e" % (w["gpu_cpu"], w["gpu_truth"])
                    text += "   " + ("PASS" if ok else "FAIL")
                passed += ok
                failed += not ok
                print("%-28s %-5s %s" % (fx, kind, text), flush=True)
        for fx, kind in [("zoo_flux_op23", "fp16"), ("zoo_sd3_op23", "bf16")]:
            if args.filter and not re.search(args.filter, fx):
                continue
            res = refit_case(args.drt, fx, kind, work)
            ok = isinstance(res, float) and res == 0.0
            passed += ok
            failed += not ok
            print("%-28s %-5s refit = recompile: %s" % (fx, kind, ("max abs diff %g  %s" % (res, "PASS" if ok else "FAIL"))
                                                          if isinstance(res, float) else "FAIL  " + res), flush=True)
        for mode in ("standard", "apg:0.5,10,0.9"):
            if args.filter and not re.search(args.filter, "zoo_sd3_op17"):
                continue
            res = cfg_case(args.drt, "zoo_sd3_op17", "fp16", mode, work)
            ok = isinstance(res, float) and res <= TOL
            passed += ok
            failed += not ok
            print("%-28s %-5s cfg %s, 3 steps vs float32: %s" % ("zoo_sd3_op17", "fp16", mode, (
                "%.2e  %s" % (res, "PASS" if ok else "FAIL")) if isinstance(res, float) else "FAIL  " + res), flush=True)
    if emu is not None:
        emu.cleanup()
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
