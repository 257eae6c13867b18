#!/usr/bin/env bash
# Generates the fuzzers' seed corpora from the committed fixtures (nothing here is committed):
#   tests/fuzz/make_corpus.sh BUILD_DIR      -> BUILD_DIR/fuzz-corpus/{onnx,npy,plan,options}/
# onnx:    tests/unit/data/frontend/*.onnx, a few small hand-made graphs, ONNX's node tests for
#          control flow, sequences, FlexAttention, low-precision types and sampling ops, and every
#          model fixture with its large initializers replaced by ConstantOfShape nodes;
# npy:     the fixtures' inputs plus arrays of every dtype, rank 0..4, .npy versions 1, 2 and 3;
# plan:    the small graphs and weight-less copies of the fixtures (weights turned into inputs)
#          compiled with BUILD_DIR/bin/drt (skipped when it is missing);
# options: --shape dims, NAME=VALUE pairs, --max-memory sizes and schedule strings.
# Needs python3 with onnx and numpy.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
B=${1:?usage: make_corpus.sh BUILD_DIR}
OUT="$B/fuzz-corpus"
DRT=${DRT:-$B/bin/drt}
rm -rf "$OUT"
mkdir -p "$OUT"/{onnx,npy,plan,options}
python3 - "$ROOT" "$OUT" <<'PY'
import glob, os, shutil, sys
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

root, out = sys.argv[1], sys.argv[2]
onnx_dir, npy_dir, opt_dir = (os.path.join(out, d) for d in ("onnx", "npy", "options"))
plan_src = os.path.join(out, "plan-src")
os.makedirs(plan_src, exist_ok=True)

for f in sorted(glob.glob(os.path.join(root, "tests/unit/data/frontend/*.onnx"))):
    shutil.copy(f, os.path.join(onnx_dir, "unit_" + os.path.basename(f)))

def save(model, name, also_plan=False):
    data = model.SerializeToString()
    open(os.path.join(onnx_dir, name + ".onnx"), "wb").write(data)
    if also_plan:
        open(os.path.join(plan_src, name + ".onnx"), "wb").write(data)

F = TensorProto.FLOAT
def mk(nodes, inputs, outputs, inits=(), opset=17):
    g = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])

rng = np.random.default_rng(0)
w = numpy_helper.from_array(rng.standard_normal((3, 4)).astype(np.float32), "W")
b = numpy_helper.from_array(rng.standard_normal((4,)).astype(np.float32), "b")
save(mk([helper.make_node("MatMul", ["x", "W"], ["m"]), helper.make_node("Add", ["m", "b"], ["a"]),
         helper.make_node("Relu", ["a"], ["y"])],
        [helper.make_tensor_value_info("x", F, ["batch", 3])], [helper.make_tensor_value_info("y", F, None)],
        [w, b]), "mlp", True)
cw = numpy_helper.from_array(rng.standard_normal((2, 1, 3, 3)).astype(np.float32), "cw")
save(mk([helper.make_node("Conv", ["x", "cw"], ["c"], pads=[1, 1, 1, 1]),
         helper.make_node("Softmax", ["c"], ["y"], axis=-1)],
        [helper.make_tensor_value_info("x", F, [1, 1, 5, 5])], [helper.make_tensor_value_info("y", F, None)], [cw]),
     "conv_softmax", True)
# ONNX's own node tests for the paths with the most structure: control flow (subgraphs,
# captures), sequences, FlexAttention, low-precision tensors (packed initializers), sampling ops
import warnings
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from onnx.backend.test import loader
    keys = ("loop", "scan", "test_if", "sequence", "flex", "float8", "e4m3", "int4", "uint4", "float4", "roialign",
            "deform", "tfidf", "optional")
    for tc in loader.load_model_tests(kind="node"):
        if tc.model is not None and any(k in tc.name.lower() for k in keys) and len(tc.model.SerializeToString()) < 65536:
            save(tc.model, "node_" + tc.name)

sh = numpy_helper.from_array(np.array([0], dtype=np.int64), "i0")
save(mk([helper.make_node("Shape", ["x"], ["s"]), helper.make_node("Gather", ["s", "i0"], ["d0"]),
         helper.make_node("Concat", ["d0", "d0"], ["ns"], axis=0),
         helper.make_node("Reshape", ["x", "ns"], ["r"]), helper.make_node("Transpose", ["r"], ["y"], perm=[1, 0])],
        [helper.make_tensor_value_info("x", F, [4, 4])], [helper.make_tensor_value_info("y", F, None)], [sh]),
     "shape_chain", True)
save(mk([helper.make_node("LayerNormalization", ["x", "g", "bb"], ["l"], axis=-1, epsilon=1e-5),
         helper.make_node("ReduceMean", ["l"], ["y"], axes=[1], keepdims=0)],
        [helper.make_tensor_value_info("x", F, [2, 8])], [helper.make_tensor_value_info("y", F, None)],
        [numpy_helper.from_array(np.ones(8, np.float32), "g"), numpy_helper.from_array(np.zeros(8, np.float32), "bb")]),
     "layernorm", True)

def shrink(model, limit=64):
    """Large initializers become ConstantOfShape nodes: the same graph in a few KB."""
    g = model.graph
    keep, nodes = [], []
    for t in g.initializer:
        n = int(np.prod(t.dims)) if len(t.dims) else 1
        if n <= limit or t.data_type not in (TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.INT64):
            keep.append(t)
            continue
        shape = numpy_helper.from_array(np.array(list(t.dims), dtype=np.int64), t.name + "__shape")
        keep.append(shape)
        val = helper.make_tensor("value", t.data_type, [1], [0.01] if t.data_type != TensorProto.INT64 else [1])
        nodes.append(helper.make_node("ConstantOfShape", [shape.name], [t.name], value=val))
    del g.initializer[:]
    g.initializer.extend(keep)
    rest = list(g.node)
    del g.node[:]
    g.node.extend(nodes + rest)
    return model

def weightless(model, limit=64):
    """Large initializers become graph inputs: a plan without weights."""
    g = model.graph
    keep = []
    for t in g.initializer:
        n = int(np.prod(t.dims)) if len(t.dims) else 1
        if n <= limit:
            keep.append(t)
        else:
            g.input.append(helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)))
    del g.initializer[:]
    g.initializer.extend(keep)
    return model

for d in sorted(glob.glob(os.path.join(root, "tests/models/fixtures/*/"))):
    name = os.path.basename(os.path.normpath(d))
    path = os.path.join(d, "model.onnx")
    if not os.path.exists(path):
        continue
    save(shrink(onnx.load(path)), "fixture_" + name)
    open(os.path.join(plan_src, "weightless_" + name + ".onnx"), "wb").write(weightless(onnx.load(path)).SerializeToString())
    for f in sorted(glob.glob(os.path.join(d, "inputs", "*.npy"))):
        shutil.copy(f, os.path.join(npy_dir, name + "_" + os.path.basename(f)))

k = 0
for dt in (np.float32, np.float16, np.float64, np.int64, np.int32, np.int16, np.int8, np.uint8, np.uint16,
           np.uint32, np.uint64, np.bool_):
    for shape in ((), (3,), (2, 3), (1, 2, 2, 2), (0, 4)):
        a = (rng.standard_normal(shape) * 3).astype(dt)
        for ver in ((1, 0), (2, 0), (3, 0)):
            with open(os.path.join(npy_dir, "gen_%03d.npy" % k), "wb") as f:
                np.lib.format.write_array(f, a, version=ver)
            k += 1

opts = ["1x4x64x64", "2,3", "scalar", "", "1X8", "sample=1x4x64x64", "batch=2", "a=b=c", "4G", "512M", "1024",
        "16KiB", "3TB", "0", "18446744073709551615", "9223372036854775807x2",
        "flow-euler\n4\nshift=3.0", "flow-euler\n0\nmu=0.8,spacing=flux", "flow-euler\n4\nimage_seq_len=1024",
        "ddim\n50\nprediction=v,spacing=trailing,eta=0.5", "dmd2\n4\ntimesteps=999/749/499/249",
        "euler-a\n1\n", "lcm\n4\noriginal_steps=50,timestep_scaling=10", "tcd\n4\ngamma=0.3",
        "cm\n2\nsigma_max=80,rho=7", "scm\n2\nsigma_data=0.5", "flow-euler\n3\nsigmas=1.0:0.5:0.25"]
for i, o in enumerate(opts):
    open(os.path.join(opt_dir, "opt_%02d" % i), "w").write(o)
PY
# plans: compile what the installed drt can (a failure only means fewer seeds)
if [ -x "$DRT" ]; then
  for m in "$OUT"/plan-src/*.onnx; do
    n=$(basename "$m" .onnx)
    "$DRT" compile "$m" -o "$OUT/plan/$n.plan" >/dev/null 2>&1 ||
      "$DRT" compile "$m" -o "$OUT/plan/$n.plan" --shape batch=1 >/dev/null 2>&1 || true
  done
else
  echo "make_corpus: $DRT not found, no plan seeds" >&2
fi
rm -rf "$OUT/plan-src"
for t in onnx npy plan options; do
  echo "make_corpus: $t: $(ls "$OUT/$t" | wc -l) files, $(du -sk "$OUT/$t" | cut -f1) KiB"
done
