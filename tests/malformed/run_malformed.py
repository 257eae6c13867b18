#!/usr/bin/env python3
"""Malformed and hostile inputs through the drt CLI: each must fail cleanly and say why.

Every case builds its inputs on the fly in a temporary folder (onnx.helper and numpy only):
ONNX models, external data, .npy files, plans and command lines that are truncated,
bit-flipped, oversized, cyclic, dangling, duplicated, mistyped, escaping their folder or over a
memory budget. For each case the runner checks

  - the exit code (0 ok, 1 usage, 2 bad input, 3 unsupported, 4 internal / over budget),
  - that stderr contains a substring naming the problem,
  - that drt was not killed by a signal and no sanitizer reported anything,
  - that a failed command left no output file behind (no partial or temporary file either).

Prints one line per case and a closing line `N passed, M failed`; exits 1 if any case failed.

Usage: python3 tests/malformed/run_malformed.py --drt build/bin/drt [--filter REGEX] [-v]
"""
import argparse
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

F = TensorProto.FLOAT
CASES = []


def case(name, rc, msg):
    """Registers a case: `fn(ctx)` prepares files and returns the argv (after `drt`) and
    optionally the output paths that must not exist afterwards when the command fails."""

    def deco(fn):
        CASES.append((name, rc, msg, fn))
        return fn

    return deco


class Ctx:
    def __init__(self, root, drt):
        self.dir = root
        self.drt = drt
        self.extra_dirs = []

    def outside_dir(self):
        """A folder outside the model's folder (removed after the case)."""
        d = tempfile.mkdtemp(prefix="drt-outside-")
        self.extra_dirs.append(d)
        return d

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def write(self, name, data):
        p = self.path(name)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(data)
        return p

    def save_model(self, name, model):
        return self.write(name, model.SerializeToString())

    def npy(self, name, array, version=None):
        p = self.path(name)
        with open(p, "wb") as f:
            np.lib.format.write_array(f, array, version=version)
        return p

    def compile(self, model_path, plan_name="model.plan", extra=()):
        out = self.path(plan_name)
        r = subprocess.run([self.drt, "compile", model_path, "-o", out, *extra], capture_output=True, text=True,
                           timeout=120)
        if r.returncode != 0:
            raise RuntimeError("setup: drt compile failed: " + r.stderr.strip())
        return out


# ---- model builders -------------------------------------------------------------------------
def mk(nodes, inputs, outputs, inits=(), opset=17, ir=None):
    g = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    if ir is not None:
        m.ir_version = ir
    return m


def vi(name, shape, dtype=F):
    return helper.make_tensor_value_info(name, dtype, shape)


def base_model(batch="batch"):
    """y = Relu(x @ W + b), x: [batch, 3]."""
    w = numpy_helper.from_array(np.arange(12, dtype=np.float32).reshape(3, 4) / 10, "W")
    b = numpy_helper.from_array(np.array([0.5, -0.5, 1, -1], np.float32), "b")
    return mk([helper.make_node("MatMul", ["x", "W"], ["m"], name="mm"),
               helper.make_node("Add", ["m", "b"], ["a"], name="add"),
               helper.make_node("Relu", ["a"], ["y"], name="relu")],
              [vi("x", [batch, 3])], [vi("y", None)], [w, b])


def x_input(ctx, shape=(2, 3), dtype=np.float32):
    return ctx.npy("x.npy", (np.arange(int(np.prod(shape))).reshape(shape) / 7).astype(dtype))


def run_base(ctx, model, extra=()):
    """argv for `drt run MODEL --input x=x.npy --output y=out/y.npy`."""
    os.makedirs(ctx.path("out"), exist_ok=True)
    mp = ctx.save_model("model.onnx", model)
    return ["run", mp, "--input", "x=" + x_input(ctx), "--output", "y=" + ctx.path("out", "y.npy"), *extra], \
        [ctx.path("out", "y.npy")]


def ext_tensor(name, dims, location, offset=None, length=None):
    t = onnx.TensorProto()
    t.name = name
    t.data_type = F
    t.dims.extend(dims)
    t.data_location = TensorProto.EXTERNAL
    for k, v in (("location", location), ("offset", offset), ("length", length)):
        if v is not None:
            e = t.external_data.add()
            e.key, e.value = k, str(v)
    return t


def ext_model(ctx, tensor, blob=None):
    """y = x + w where w is external data; x: [4]."""
    if blob is not None:
        ctx.write("weights.bin", blob)
    return mk([helper.make_node("Add", ["x", tensor.name], ["y"])], [vi("x", [4])], [vi("y", None)], [tensor])


def compile_argv(ctx, model, extra=()):
    mp = ctx.save_model("model.onnx", model)
    out = ctx.path("out", "model.plan")
    os.makedirs(ctx.path("out"), exist_ok=True)
    return ["compile", mp, "-o", out, *extra], [out]


def plan_bytes(ctx, shape="batch=2"):
    mp = ctx.save_model("base.onnx", base_model())
    p = ctx.compile(mp, "base.plan", ["--shape", shape])
    with open(p, "rb") as f:
        data = bytearray(f.read())
    os.remove(p)
    return data


def plan_sections(data):
    """[(type, offset, size, entry_offset)] from a plan's section table."""
    nsec, = struct.unpack_from("<I", data, 24)
    table, = struct.unpack_from("<Q", data, 32)
    out = []
    for i in range(nsec):
        e = table + 32 * i
        t, _, off, size, _ = struct.unpack_from("<IIQQI", data, e)
        out.append((t, off, size, e))
    return out


def plan_first_node(data):
    """Offsets in a plan of the first node's op string (length-prefixed) and of its input
    index list, by walking the GRAPH section as runtime/plan_format.h lays it out."""
    t, off, size, _ = [x for x in plan_sections(data) if x[0] == 2][0]
    pos = off + 4  # opset
    pos += 4 + struct.unpack_from("<I", data, pos)[0]  # graph name
    nv, = struct.unpack_from("<I", data, pos)
    pos += 4
    for _ in range(nv):
        pos += 4 + struct.unpack_from("<I", data, pos)[0]  # value name
        kind, _dt, rank, _flags = struct.unpack_from("<BBBB", data, pos)
        pos += 4 + 8 * rank + (16 if kind == 2 else 0)
    nn, = struct.unpack_from("<I", data, pos)
    assert nn > 0, "plan has no nodes"
    pos += 4
    pos += 4 + struct.unpack_from("<I", data, pos)[0]  # node name
    op_at = pos
    pos += 4 + struct.unpack_from("<I", data, pos)[0]  # op
    pos += 4  # opset
    nin, = struct.unpack_from("<I", data, pos)
    assert nin > 0, "first node has no inputs"
    return op_at, pos + 4


def fix_plan_checksums(data):
    for t, off, size, e in plan_sections(data):
        struct.pack_into("<I", data, e + 24, zlib.crc32(bytes(data[off:off + size])) & 0xffffffff)
    struct.pack_into("<I", data, 48, zlib.crc32(bytes(data[:48])) & 0xffffffff)
    return data


def run_plan_argv(ctx, data, extra=(), inputs=True):
    p = ctx.write("model.plan", bytes(data))
    os.makedirs(ctx.path("out"), exist_ok=True)
    argv = ["run", p]
    if inputs:
        argv += ["--input", "x=" + x_input(ctx)]
    return argv + ["--output", "y=" + ctx.path("out", "y.npy"), *extra], [ctx.path("out", "y.npy")]


def is_root():
    return hasattr(os, "geteuid") and os.geteuid() == 0


def unwritable_dir(ctx):
    """A folder drt cannot create files in (as root, chmod does not stop writes: use /sys)."""
    if is_root():
        return "/sys"
    d = ctx.path("ro")
    os.makedirs(d, exist_ok=True)
    os.chmod(d, 0o555)
    return d


# ================================================================================================
# ONNX models
# ================================================================================================
@case("onnx_sanity_valid_model_runs", 0, "")
def _(ctx):
    return run_base(ctx, base_model())


@case("onnx_truncated", 2, "not a valid ONNX model")
def _(ctx):
    data = base_model().SerializeToString()
    mp = ctx.write("model.onnx", data[: len(data) // 2])
    return ["run", mp, "--input", "x=" + x_input(ctx)], []


@case("onnx_empty_file", 2, "not a valid ONNX model")
def _(ctx):
    return ["run", ctx.write("model.onnx", b""), "--input", "x=" + x_input(ctx)], []


@case("onnx_garbage_bytes", 2, "not a valid ONNX model")
def _(ctx):
    return ["run", ctx.write("model.onnx", bytes(range(256)) * 4), "--input", "x=" + x_input(ctx)], []


@case("onnx_bitflip_op_type", 3, "unsupported op 'Relv'")
def _(ctx):
    data = bytearray(base_model().SerializeToString())
    i = data.find(b"Relu")
    data[i + 3] ^= 0x03  # 'u' -> 'v'
    os.makedirs(ctx.path("out"), exist_ok=True)
    return ["run", ctx.write("model.onnx", bytes(data)), "--input", "x=" + x_input(ctx), "--output",
            "y=" + ctx.path("out", "y.npy")], [ctx.path("out", "y.npy")]


@case("onnx_bitflip_length_prefix", 2, "not a valid ONNX model")
def _(ctx):
    data = bytearray(base_model().SerializeToString())
    i = data.index(b"\x3a")  # ModelProto.graph (field 7, length-delimited)
    while data[i + 1] & 0x80 == 0 and i + 1 < len(data):
        i = data.index(b"\x3a", i + 1)
    data[i + 2] |= 0x70  # a high bit of the graph's length varint: it now runs past the end
    return ["run", ctx.write("model.onnx", bytes(data)), "--input", "x=" + x_input(ctx)], []


@case("onnx_negative_input_dim", 2, "negative")
def _(ctx):
    m = base_model()
    m.graph.input[0].type.tensor_type.shape.dim[0].dim_value = -5
    return compile_argv(ctx, m)


@case("onnx_negative_initializer_dim", 2, "negative dimension")
def _(ctx):
    m = base_model()
    m.graph.initializer[0].dims[0] = -3
    return compile_argv(ctx, m, ["--shape", "batch=1"])


@case("onnx_huge_initializer_dims", 2, "too many elements")
def _(ctx):
    m = base_model()
    t = m.graph.initializer[0]
    del t.dims[:]
    t.dims.extend([2 ** 40, 2 ** 40])
    return compile_argv(ctx, m, ["--shape", "batch=1"])


@case("onnx_huge_input_shape", 2, "overflow")
def _(ctx):
    m = base_model(batch=2 ** 62)
    return compile_argv(ctx, m)


@case("onnx_rank_overflow", 3, "rank")
def _(ctx):
    m = mk([helper.make_node("Relu", ["x"], ["y"])], [vi("x", [1] * 9)], [vi("y", None)])
    return compile_argv(ctx, m)


@case("onnx_cycle", 2, "cycle")
def _(ctx):
    m = mk([helper.make_node("Add", ["x", "b2"], ["a1"], name="n1"),
            helper.make_node("Relu", ["a1"], ["b2"], name="n2"),
            helper.make_node("Relu", ["a1"], ["y"], name="n3")], [vi("x", [2])], [vi("y", None)])
    return compile_argv(ctx, m)


@case("onnx_self_loop", 2, "cycle")
def _(ctx):
    m = mk([helper.make_node("Add", ["x", "s"], ["s"], name="selfie"),
            helper.make_node("Relu", ["s"], ["y"])], [vi("x", [2])], [vi("y", None)])
    return compile_argv(ctx, m)


@case("onnx_dangling_node_input", 2, "input 1 'nowhere' is not defined")
def _(ctx):
    m = mk([helper.make_node("Add", ["x", "nowhere"], ["y"], name="add")], [vi("x", [2])], [vi("y", None)])
    return compile_argv(ctx, m)


@case("onnx_required_input_omitted", 2, "required input 0 is omitted")
def _(ctx):
    i = numpy_helper.from_array(np.array([0], np.int64), "i")
    m = mk([helper.make_node("Gather", ["", "i"], ["g"], name="gather"), helper.make_node("Add", ["x", "g"], ["y"])],
           [vi("x", [1])], [vi("y", None)], [i])
    return compile_argv(ctx, m)


@case("onnx_dangling_graph_output", 2, "graph output 'ghost' is not produced")
def _(ctx):
    m = mk([helper.make_node("Relu", ["x"], ["y"])], [vi("x", [2])], [vi("ghost", None)])
    return compile_argv(ctx, m)


@case("onnx_duplicate_node_output", 2, "duplicate definition of 'y'")
def _(ctx):
    m = mk([helper.make_node("Relu", ["x"], ["y"], name="r1"), helper.make_node("Neg", ["x"], ["y"], name="r2")],
           [vi("x", [2])], [vi("y", None)])
    return compile_argv(ctx, m)


@case("onnx_duplicate_initializer", 2, "duplicate definition of 'W'")
def _(ctx):
    m = base_model()
    m.graph.initializer.append(m.graph.initializer[0])
    return compile_argv(ctx, m, ["--shape", "batch=1"])


@case("onnx_duplicate_attribute", 2, "attribute 'axis' appears twice")
def _(ctx):
    n = helper.make_node("Softmax", ["x"], ["y"], axis=0)
    n.attribute.append(helper.make_attribute("axis", 0))
    return compile_argv(ctx, mk([n], [vi("x", [2, 3])], [vi("y", None)]))


# ---- hostile attributes and shapes of the ops added later (found by review) ----------------------
def _col2im(ctx, blk, **attrs):
    n = helper.make_node("Col2Im", ["x", "img", "blk"], ["y"], **attrs)
    inits = [numpy_helper.from_array(np.array([3, 3], np.int64), "img"), numpy_helper.from_array(np.array(blk, np.int64), "blk")]
    return compile_argv(ctx, mk([n], [vi("x", [1, 4, 4])], [vi("y", None)], inits, opset=18))


@case("onnx_col2im_block_overflow", 2, "image and block sizes must be positive and small enough")
def _(ctx):
    return _col2im(ctx, [2 ** 32, 2 ** 32])


@case("onnx_col2im_zero_stride", 2, "attribute strides[0] = 0 is out of range")
def _(ctx):
    return _col2im(ctx, [2, 2], strides=[0, 0])


@case("onnx_col2im_short_pads", 2, "attribute pads has 1 values, expected 4")
def _(ctx):
    return _col2im(ctx, [2, 2], pads=[0])


@case("onnx_matmulinteger_empty_zero_point", 2, "input 2 'azp' has 0 values")
def _(ctx):
    n = helper.make_node("MatMulInteger", ["a", "b", "azp"], ["y"])
    return compile_argv(ctx, mk([n], [vi("a", [2, 3], TensorProto.UINT8), vi("b", [3, 2], TensorProto.UINT8)],
                                [vi("y", None, TensorProto.INT32)], [numpy_helper.from_array(np.zeros([0], np.uint8), "azp")],
                                opset=18))


@case("onnx_rotary_empty_cache", 2, "the caches have no rows")
def _(ctx):
    n = helper.make_node("RotaryEmbedding", ["x", "c", "s", "p"], ["y"])
    empty = np.zeros([0, 4], np.float32)
    return compile_argv(ctx, mk([n], [vi("x", [1, 2, 3, 8]), vi("p", [1, 3], TensorProto.INT64)], [vi("y", None)],
                                [numpy_helper.from_array(empty, "c"), numpy_helper.from_array(empty, "s")], opset=23))


@case("onnx_wrong_dtype_mix", 2, "int64")
def _(ctx):
    i = numpy_helper.from_array(np.array([1, 2], np.int64), "i")
    m = mk([helper.make_node("Add", ["x", "i"], ["y"], name="add")], [vi("x", [2])], [vi("y", None)], [i])
    return compile_argv(ctx, m)


@case("onnx_matmul_shape_mismatch", 2, "MatMul")
def _(ctx):
    w = numpy_helper.from_array(np.ones((5, 4), np.float32), "W")
    m = mk([helper.make_node("MatMul", ["x", "W"], ["y"], name="mm")], [vi("x", [2, 3])], [vi("y", None)], [w])
    return compile_argv(ctx, m)


@case("onnx_reshape_impossible", 2, "Reshape")
def _(ctx):
    s = numpy_helper.from_array(np.array([4, 4], np.int64), "s")
    m = mk([helper.make_node("Reshape", ["x", "s"], ["y"], name="rs")], [vi("x", [2, 3])], [vi("y", None)], [s])
    return compile_argv(ctx, m)


@case("onnx_transpose_bad_perm", 2, "perm")
def _(ctx):
    m = mk([helper.make_node("Transpose", ["x"], ["y"], perm=[0, 0])], [vi("x", [2, 3])], [vi("y", None)])
    return compile_argv(ctx, m)


@case("onnx_gather_index_out_of_range", 2, "out of range")
def _(ctx):
    d = numpy_helper.from_array(np.arange(4, dtype=np.float32), "d")
    i = numpy_helper.from_array(np.array([7], np.int64), "i")
    m = mk([helper.make_node("Gather", ["d", "i"], ["g"], axis=0), helper.make_node("Add", ["x", "g"], ["y"])],
           [vi("x", [1])], [vi("y", None)], [d, i])
    return compile_argv(ctx, m)


@case("onnx_unknown_op", 3, "unsupported op 'FrobnicateV2'")
def _(ctx):
    m = mk([helper.make_node("FrobnicateV2", ["x"], ["y"])], [vi("x", [2])], [vi("y", None)])
    return compile_argv(ctx, m)


@case("onnx_unknown_domain", 3, "unsupported domain 'com.evil'")
def _(ctx):
    m = mk([helper.make_node("Relu", ["x"], ["y"], domain="com.evil")], [vi("x", [2])], [vi("y", None)])
    m.opset_import.append(helper.make_opsetid("com.evil", 1))
    return compile_argv(ctx, m)


@case("onnx_opset_too_new", 3, "opset 99 is not supported")
def _(ctx):
    return compile_argv(ctx, mk([helper.make_node("Relu", ["x"], ["y"])], [vi("x", [2])], [vi("y", None)], opset=99))


@case("onnx_opset_zero", 3, "opset 0 is not supported")
def _(ctx):
    return compile_argv(ctx, mk([helper.make_node("Relu", ["x"], ["y"])], [vi("x", [2])], [vi("y", None)], opset=0))


@case("onnx_string_input", 3, "string")
def _(ctx):
    m = mk([helper.make_node("Identity", ["x"], ["y"])], [vi("x", [2], TensorProto.STRING)],
           [vi("y", None, TensorProto.STRING)])
    return compile_argv(ctx, m)


@case("onnx_subgraph_attribute", 3, "subgraph")
def _(ctx):
    sub = helper.make_graph([helper.make_node("Identity", ["x"], ["z"])], "sub", [], [vi("z", None)])
    n = helper.make_node("Identity", ["x"], ["y"], body=sub)
    return compile_argv(ctx, mk([n], [vi("x", [2])], [vi("y", None)]))


def pb_field(number, payload):
    """A length-delimited protobuf field (the python protobuf refuses to build this deep)."""
    def varint(v):
        out = bytearray()
        while True:
            b = v & 0x7f
            v >>= 7
            out.append(b | (0x80 if v else 0))
            if not v:
                return bytes(out)
    return varint(number << 3 | 2) + varint(len(payload)) + payload


@case("onnx_deep_nesting", 2, "nested deeper")
def _(ctx):
    g = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g0", [vi("x", [1])],
                          [vi("y", None)]).SerializeToString()
    for _ in range(200):  # GraphProto.node -> NodeProto.attribute -> AttributeProto.g -> GraphProto ...
        attr = pb_field(1, b"body") + pb_field(6, g) + bytes([0xa0, 0x01, 5])  # name, g, type=GRAPH
        node = pb_field(1, b"x") + pb_field(2, b"y") + pb_field(4, b"Identity") + pb_field(5, attr)
        g = pb_field(1, node)
    opset = helper.make_opsetid("", 17).SerializeToString()
    model = bytes([0x08, 8]) + pb_field(7, g) + pb_field(8, opset)
    mp = ctx.write("model.onnx", model)
    return ["compile", mp, "-o", ctx.path("m.plan")], [ctx.path("m.plan")]


@case("onnx_model_is_a_directory", 2, "not a regular file")
def _(ctx):
    os.makedirs(ctx.path("dir.onnx"))
    return ["run", ctx.path("dir.onnx")], []


@case("onnx_model_is_a_fifo", 2, "not a regular file")
def _(ctx):
    os.mkfifo(ctx.path("fifo.onnx"))
    return ["run", ctx.path("fifo.onnx"), "--input", "x=" + x_input(ctx)], []


@case("onnx_model_missing", 2, "No such file")
def _(ctx):
    return ["run", ctx.path("missing.onnx")], []


@case("onnx_missing_run_input", 2, "input 'x' (float32[2x3]) was not provided")
def _(ctx):
    m = base_model(batch=2)
    return ["run", ctx.save_model("model.onnx", m), "--no-specialize"], []


@case("onnx_input_shape_mismatch", 2, "expects")
def _(ctx):
    m = base_model(batch=2)
    mp = ctx.save_model("model.onnx", m)
    return ["run", mp, "--input", "x=" + ctx.npy("x.npy", np.ones((2, 5), np.float32))], []


@case("onnx_input_dtype_mismatch", 2, "dtype int64")
def _(ctx):
    mp = ctx.save_model("model.onnx", base_model())
    return ["run", mp, "--input", "x=" + ctx.npy("x.npy", np.ones((2, 3), np.int64))], []


@case("onnx_conflicting_symbolic_dim", 2, "batch")
def _(ctx):
    m = mk([helper.make_node("Add", ["x", "z"], ["y"])], [vi("x", ["batch", 3]), vi("z", ["batch", 3])],
           [vi("y", None)])
    mp = ctx.save_model("model.onnx", m)
    return ["run", mp, "--input", "x=" + ctx.npy("x.npy", np.ones((2, 3), np.float32)), "--input",
            "z=" + ctx.npy("z.npy", np.ones((5, 3), np.float32)), "--no-specialize"], []


@case("onnx_unknown_output_name", 2, "no output named 'nope'")
def _(ctx):
    os.makedirs(ctx.path("out"), exist_ok=True)
    mp = ctx.save_model("model.onnx", base_model())
    return ["run", mp, "--input", "x=" + x_input(ctx), "--output", "nope=" + ctx.path("out", "n.npy")], \
        [ctx.path("out", "n.npy")]


# ---- memory budget ---------------------------------------------------------------------------
def big_weight_model():
    """y = x @ W with a 4 MiB W."""
    w = numpy_helper.from_array(np.ones((1024, 1024), np.float32), "W")
    return mk([helper.make_node("MatMul", ["x", "W"], ["y"])], [vi("x", [1, 1024])], [vi("y", None)], [w])


def big_activation_model():
    """y = ReduceSum(Tile(x, [1, 262144])) with x: [1, 16]: 16 MiB of intermediate."""
    r = numpy_helper.from_array(np.array([1, 262144], np.int64), "reps")
    return mk([helper.make_node("Tile", ["x", "reps"], ["t"]),
               helper.make_node("ReduceSum", ["t"], ["y"], keepdims=0)],
              [vi("x", [1, 16])], [vi("y", None)], [r], opset=11)


@case("budget_model_file_over_max_memory", 4, "bytes, over the memory budget of 1048576 bytes (--max-memory)")
def _(ctx):
    os.makedirs(ctx.path("out"), exist_ok=True)
    mp = ctx.save_model("model.onnx", big_weight_model())
    x = ctx.npy("x.npy", np.ones((1, 1024), np.float32))
    return ["run", mp, "--input", "x=" + x, "--output", "y=" + ctx.path("out", "y.npy"), "--max-memory", "1M"], \
        [ctx.path("out", "y.npy")]


@case("budget_activations_over_max_memory", 4, "peak activations")
def _(ctx):
    os.makedirs(ctx.path("out"), exist_ok=True)
    mp = ctx.save_model("model.onnx", big_activation_model())
    x = ctx.npy("x.npy", np.ones((1, 16), np.float32))
    return ["run", mp, "--input", "x=" + x, "--no-specialize", "--output", "y=" + ctx.path("out", "y.npy"),
            "--max-memory", "4M"], [ctx.path("out", "y.npy")]


@case("budget_activations_within_max_memory", 0, "")
def _(ctx):
    os.makedirs(ctx.path("out"), exist_ok=True)
    mp = ctx.save_model("model.onnx", big_activation_model())
    x = ctx.npy("x.npy", np.ones((1, 16), np.float32))
    return ["run", mp, "--input", "x=" + x, "--no-specialize", "--output", "y=" + ctx.path("out", "y.npy"),
            "--max-memory", "64MiB"], []


@case("budget_constant_folding_over_max_memory", 4, "folding it into a")
def _(ctx):
    s = numpy_helper.from_array(np.array([1024, 1024], np.int64), "s")
    m = mk([helper.make_node("ConstantOfShape", ["s"], ["c"]), helper.make_node("Add", ["x", "c"], ["y"])],
           [vi("x", [1024, 1024])], [vi("y", None)], [s])
    return compile_argv(ctx, m, ["--max-memory", "2M"])


@case("budget_plan_over_max_memory", 4, "over the memory budget of 4194304 bytes (--max-memory)")
def _(ctx):
    mp = ctx.save_model("big.onnx", big_activation_model())
    p = ctx.compile(mp, "big.plan")
    os.makedirs(ctx.path("out"), exist_ok=True)
    x = ctx.npy("x.npy", np.ones((1, 16), np.float32))
    return ["run", p, "--input", "x=" + x, "--output", "y=" + ctx.path("out", "y.npy"), "--max-memory", "4M"], \
        [ctx.path("out", "y.npy")]


@case("budget_input_npy_over_max_memory", 4, "x.npy' is 16777344 bytes, over the memory budget of 8388608")
def _(ctx):
    mp = ctx.save_model("model.onnx", base_model())
    x = ctx.npy("x.npy", np.ones((4 * 1024 * 1024,), np.float32))
    return ["run", mp, "--input", "x=" + x, "--max-memory", "8M"], []


# ================================================================================================
# External data
# ================================================================================================
W4 = np.array([1, 2, 3, 4], np.float32).tobytes()


@case("ext_absolute_path", 2, "is an absolute path")
def _(ctx):
    return compile_argv(ctx, ext_model(ctx, ext_tensor("w", [4], "/etc/passwd")))


@case("ext_dotdot_escape", 2, "contains a '..' component")
def _(ctx):
    return compile_argv(ctx, ext_model(ctx, ext_tensor("w", [4], "sub/../../weights.bin"), W4))


@case("ext_backslash_dotdot_escape", 2, "contains a '..' component")
def _(ctx):
    return compile_argv(ctx, ext_model(ctx, ext_tensor("w", [4], "..\\..\\etc\\passwd"), W4))


@case("ext_symlink_escape", 2, "outside the model's folder")
def _(ctx):
    outside = ctx.outside_dir()
    with open(os.path.join(outside, "secret.bin"), "wb") as f:
        f.write(W4)
    os.symlink(os.path.join(outside, "secret.bin"), ctx.path("link.bin"))
    return compile_argv(ctx, ext_model(ctx, ext_tensor("w", [4], "link.bin")))


@case("ext_symlinked_folder_escape", 2, "outside the model's folder")
def _(ctx):
    outside = ctx.outside_dir()
    with open(os.path.join(outside, "w.bin"), "wb") as f:
        f.write(W4)
    os.symlink(outside, ctx.path("weights"))
    return compile_argv(ctx, ext_model(ctx, ext_tensor("w", [4], "weights/w.bin")))


@case("ext_missing_file", 2, "No such file")
def _(ctx):
    return compile_argv(ctx, ext_model(ctx, ext_tensor("w", [4], "missing.bin")))


@case("ext_location_is_directory", 2, "is not a regular file")
def _(ctx):
    os.makedirs(ctx.path("wdir"))
    return compile_argv(ctx, ext_model(ctx, ext_tensor("w", [4], "wdir")))


@case("ext_offset_past_end", 2, "past the end")
def _(ctx):
    return compile_argv(ctx, ext_model(ctx, ext_tensor("w", [4], "weights.bin", offset=4096, length=16), W4))


@case("ext_huge_offset", 2, "past the end")
def _(ctx):
    return compile_argv(ctx, ext_model(ctx, ext_tensor("w", [4], "weights.bin", offset=2 ** 63 + 5, length=16), W4))


@case("ext_length_mismatch", 2, "has length 12, expected 16")
def _(ctx):
    return compile_argv(ctx, ext_model(ctx, ext_tensor("w", [4], "weights.bin", offset=0, length=12), W4))


@case("ext_negative_offset_text", 2, "invalid offset '-8'")
def _(ctx):
    return compile_argv(ctx, ext_model(ctx, ext_tensor("w", [4], "weights.bin", offset=-8), W4))


@case("ext_no_location", 2, "no 'location'")
def _(ctx):
    t = ext_tensor("w", [4], "x")
    del t.external_data[:]
    return compile_argv(ctx, ext_model(ctx, t))


# ================================================================================================
# .npy inputs
# ================================================================================================
def npy_bytes(header, data=b""):
    h = header.encode("latin1")
    pad = (64 - (10 + len(h) + 1) % 64) % 64
    h = h + b" " * pad + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h + data


def run_with_npy(ctx, npy_path):
    mp = ctx.save_model("model.onnx", base_model())
    os.makedirs(ctx.path("out"), exist_ok=True)
    return ["run", mp, "--input", "x=" + npy_path, "--output", "y=" + ctx.path("out", "y.npy")], \
        [ctx.path("out", "y.npy")]


@case("npy_truncated_data", 2, "expected 24 data bytes")
def _(ctx):
    p = ctx.npy("x.npy", np.ones((2, 3), np.float32))
    with open(p, "r+b") as f:
        f.truncate(os.path.getsize(p) - 5)
    return run_with_npy(ctx, p)


@case("pb_truncated_tensor", 2, "x.pb")
def _(ctx):
    t = numpy_helper.from_array(np.ones((2, 3), np.float32), "x").SerializeToString()
    return run_with_npy(ctx, ctx.write("x.pb", t[:-5]))


@case("pb_not_a_tensor", 2, "not an ONNX TensorProto")
def _(ctx):
    return run_with_npy(ctx, ctx.write("x.pb", b"\xff\xff\xff\xff garbage"))


@case("pb_input_wrong_dtype", 2, "input 'x' has dtype int4, the model expects float32")
def _(ctx):
    import ml_dtypes  # noqa: PLC0415 (onnx's own dependency)
    t = numpy_helper.from_array(np.ones((2, 3), np.int8).astype(ml_dtypes.int4), "x").SerializeToString()
    return run_with_npy(ctx, ctx.write("x.pb", t))


@case("pb_packed_int4_huge_dims", 2, "has too many elements")
def _(ctx):
    t = TensorProto()
    t.name, t.data_type = "x", TensorProto.INT4
    t.dims.extend([2 ** 62 + 1])  # 2^61 packed bytes announced, one present: refused before allocating
    t.raw_data = b"\x11"
    return run_with_npy(ctx, ctx.write("x.pb", t.SerializeToString()))


@case("pb_packed_int4_short", 2, "packed 4-bit")
def _(ctx):
    t = TensorProto()
    t.name, t.data_type = "x", TensorProto.INT4
    t.dims.extend([2, 3])
    t.raw_data = b"\x12\x34"  # 6 int4 need 3 bytes
    return run_with_npy(ctx, ctx.write("x.pb", t.SerializeToString()))


def fp8_model():
    """y = Cast(x, float8e4m3fn): an output numpy has no dtype for."""
    return mk([helper.make_node("Cast", ["x"], ["y"], to=TensorProto.FLOAT8E4M3FN, name="cast")],
              [vi("x", [2, 3])], [vi("y", [2, 3], TensorProto.FLOAT8E4M3FN)], opset=21)


@case("out_float8_as_npy", 3, "write it as an ONNX TensorProto instead")
def _(ctx):
    os.makedirs(ctx.path("out"), exist_ok=True)
    return ["run", ctx.save_model("model.onnx", fp8_model()), "--input", "x=" + x_input(ctx), "--output-dir",
            ctx.path("out")], [ctx.path("out", "y.npy")]


@case("cli_output_format_unknown", 1, "--output-format expects npy or pb")
def _(ctx):
    return ["run", ctx.save_model("model.onnx", fp8_model()), "--input", "x=" + x_input(ctx), "--output-dir",
            ctx.dir, "--output-format", "csv"], []


@case("op_refuses_float8", 3, "has dtype float8e4m3fn, which Add does not take")
def _(ctx):
    m = mk([helper.make_node("Cast", ["x"], ["q"], to=TensorProto.FLOAT8E4M3FN, name="cast"),
            helper.make_node("Add", ["q", "q"], ["y"], name="add")],
           [vi("x", [2, 3])], [vi("y", [2, 3], TensorProto.FLOAT8E4M3FN)], opset=21)
    return ["run", ctx.save_model("model.onnx", m), "--input", "x=" + x_input(ctx)], []


@case("subgraph_undefined_name", 2, "subgraph 'then_branch': node 'uses_nope' (Relu, opset 17): input 0 'nope' is not defined")
def _(ctx):
    then = helper.make_graph([helper.make_node("Relu", ["nope"], ["t"], name="uses_nope")], "then", [], [vi("t", [2, 3])])
    els = helper.make_graph([helper.make_node("Relu", ["x"], ["e"])], "else", [], [vi("e", [2, 3])])
    c = numpy_helper.from_array(np.array(True), "c")
    m = mk([helper.make_node("If", ["c"], ["y"], then_branch=then, else_branch=els, name="branch")],
           [vi("x", [2, 3])], [vi("y", [2, 3])], [c])
    return ["run", ctx.save_model("model.onnx", m), "--input", "x=" + x_input(ctx)], []


@case("if_without_else_branch", 2, "needs graph attributes then_branch and else_branch")
def _(ctx):
    then = helper.make_graph([helper.make_node("Relu", ["x"], ["t"])], "then", [], [vi("t", [2, 3])])
    c = numpy_helper.from_array(np.array(True), "c")
    m = mk([helper.make_node("If", ["c"], ["y"], then_branch=then, name="branch")], [vi("x", [2, 3])],
           [vi("y", [2, 3])], [c])
    return ["run", ctx.save_model("model.onnx", m), "--input", "x=" + x_input(ctx)], []


@case("roialign_batch_index_out_of_range", 2, "batch_indices[1] = 5 is outside [0, 2)")
def _(ctx):
    rois = numpy_helper.from_array(np.array([[0, 0, 2, 2], [1, 1, 3, 3]], np.float32), "rois")
    bi = numpy_helper.from_array(np.array([0, 5], np.int64), "bi")
    m = mk([helper.make_node("RoiAlign", ["x", "rois", "bi"], ["y"], output_height=2, output_width=2, name="roi")],
           [vi("x", [2, 3, 4, 4])], [vi("y", None)], [rois, bi], opset=16)
    x = ctx.npy("x.npy", np.ones((2, 3, 4, 4), np.float32))
    return ["run", ctx.save_model("model.onnx", m), "--input", "x=" + x, "--no-specialize"], []


@case("roialign_huge_sampling_grid", 2, "sample points, more than 2^26")
def _(ctx):
    rois = numpy_helper.from_array(np.array([[0, 0, 2.0 ** 30, 2.0 ** 30]], np.float32), "rois")
    bi = numpy_helper.from_array(np.array([0], np.int64), "bi")
    m = mk([helper.make_node("RoiAlign", ["x", "rois", "bi"], ["y"], output_height=2048, output_width=2048,
                             name="roi")], [vi("x", [1, 1, 4, 4])], [vi("y", None)], [rois, bi], opset=16)
    x = ctx.npy("x.npy", np.ones((1, 1, 4, 4), np.float32))
    return ["run", ctx.save_model("model.onnx", m), "--input", "x=" + x, "--no-specialize"], []


@case("sequence_insert_without_tensor", 2, "(SequenceInsert, opset 17): has 1 inputs, expected 2..3")
def _(ctx):
    m = mk([helper.make_node("SequenceEmpty", [], ["s"], dtype=F, name="empty"),
            helper.make_node("SequenceInsert", ["s"], ["s2"], name="ins"),
            helper.make_node("ConcatFromSequence", ["s2"], ["y"], axis=0, name="cat")],
           [vi("x", [2, 3])], [vi("y", None)])
    return ["run", ctx.save_model("model.onnx", m), "--input", "x=" + x_input(ctx)], []


@case("npy_truncated_header", 2, "truncated .npy header")
def _(ctx):
    data = npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }")
    return run_with_npy(ctx, ctx.write("x.npy", data[:30]))


@case("npy_bad_magic", 2, "not a .npy file")
def _(ctx):
    return run_with_npy(ctx, ctx.write("x.npy", b"PK\x03\x04" + b"\0" * 100))


@case("npy_fortran_order", 3, "Fortran-order")
def _(ctx):
    return run_with_npy(ctx, ctx.npy("x.npy", np.asfortranarray(np.ones((2, 3), np.float32))))


@case("npy_big_endian", 3, "big-endian")
def _(ctx):
    return run_with_npy(ctx, ctx.npy("x.npy", np.ones((2, 3), ">f4")))


@case("npy_object_pickle", 3, "pickled object arrays")
def _(ctx):
    data = npy_bytes("{'descr': '|O', 'fortran_order': False, 'shape': (1,), }", b"\x80\x04N.")
    return run_with_npy(ctx, ctx.write("x.npy", data))


@case("npy_huge_shape", 2, "shape too large")
def _(ctx):
    data = npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296), }")
    return run_with_npy(ctx, ctx.write("x.npy", data))


@case("npy_negative_dim", 2, "malformed shape")
def _(ctx):
    data = npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (-2, 3), }", b"\0" * 24)
    return run_with_npy(ctx, ctx.write("x.npy", data))


@case("npy_rank_overflow", 3, "rank above 8")
def _(ctx):
    return run_with_npy(ctx, ctx.npy("x.npy", np.ones([1] * 9, np.float32)))


@case("npy_unsupported_dtype", 3, "dtype '<c8' is not supported")
def _(ctx):
    return run_with_npy(ctx, ctx.npy("x.npy", np.ones((2, 3), np.complex64)))


@case("npy_version_9", 3, "format version 9")
def _(ctx):
    data = bytearray(npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", b"\0" * 24))
    data[6] = 9
    return run_with_npy(ctx, ctx.write("x.npy", bytes(data)))


@case("npy_input_is_a_fifo", 2, "is not a regular file")
def _(ctx):
    os.mkfifo(ctx.path("x.npy"))
    return run_with_npy(ctx, ctx.path("x.npy"))


@case("npy_input_is_a_fifo_for_a_plan", 2, "is not a regular file")
def _(ctx):
    p = ctx.write("model.plan", bytes(plan_bytes(ctx)))
    os.mkfifo(ctx.path("x.npy"))
    return ["run", p, "--input", "x=" + ctx.path("x.npy")], []


@case("npy_missing_file", 2, "no such file")
def _(ctx):
    return run_with_npy(ctx, ctx.path("missing.npy"))


# ================================================================================================
# Plans
# ================================================================================================
@case("plan_sanity_valid_plan_runs", 0, "")
def _(ctx):
    return run_plan_argv(ctx, plan_bytes(ctx))


@case("plan_truncated", 2, "truncated")
def _(ctx):
    data = plan_bytes(ctx)
    return run_plan_argv(ctx, data[: len(data) - 100])


@case("plan_header_only", 2, "truncated")
def _(ctx):
    return run_plan_argv(ctx, plan_bytes(ctx)[:64])


@case("plan_padded", 2, "truncated or padded")
def _(ctx):
    return run_plan_argv(ctx, plan_bytes(ctx) + b"\0" * 64)


@case("plan_bitflip_graph_section", 2, "checksum mismatch in the graph section")
def _(ctx):
    data = plan_bytes(ctx)
    t, off, size, _ = [s for s in plan_sections(data) if s[0] == 2][0]
    data[off + size // 2] ^= 0x10
    return run_plan_argv(ctx, data)


@case("plan_bitflip_header", 2, "header checksum mismatch")
def _(ctx):
    data = plan_bytes(ctx)
    data[20] ^= 0x04  # targets
    return run_plan_argv(ctx, data)


@case("plan_format_version_mismatch", 3, "plan format version 7")
def _(ctx):
    data = plan_bytes(ctx)
    struct.pack_into("<I", data, 8, 7)
    return run_plan_argv(ctx, fix_plan_checksums(data))


@case("plan_section_out_of_range", 2, "is outside the file")
def _(ctx):
    data = plan_bytes(ctx)
    _, _, _, e = plan_sections(data)[0]
    struct.pack_into("<Q", data, e + 8, 2 ** 62)
    return run_plan_argv(ctx, fix_plan_checksums(data))


@case("plan_unknown_op_checksums_fixed", 3, "unknown to this distilrt version")
def _(ctx):
    data = plan_bytes(ctx)
    op_at, _ = plan_first_node(data)
    n, = struct.unpack_from("<I", data, op_at)
    data[op_at + 4:op_at + 4 + n] = b"X" * n  # same length, unknown name
    return run_plan_argv(ctx, fix_plan_checksums(data))


@case("plan_value_index_out_of_range", 2, "refers to value")
def _(ctx):
    data = plan_bytes(ctx)
    _, inputs_at = plan_first_node(data)
    struct.pack_into("<I", data, inputs_at, 100000)
    return run_plan_argv(ctx, fix_plan_checksums(data))


@case("plan_missing_input", 2, "input 'x' was not set")
def _(ctx):
    return run_plan_argv(ctx, plan_bytes(ctx), inputs=False)


@case("plan_input_shape_mismatch", 2, "the plan expects 2x3")
def _(ctx):
    data = plan_bytes(ctx)
    p = ctx.write("model.plan", bytes(data))
    return ["run", p, "--input", "x=" + ctx.npy("x.npy", np.ones((3, 3), np.float32))], []


@case("plan_unknown_input_name", 2, "has no input named 'q'")
def _(ctx):
    p = ctx.write("model.plan", bytes(plan_bytes(ctx)))
    return ["run", p, "--input", "x=" + x_input(ctx), "--input", "q=" + x_input(ctx)], []


@case("plan_unknown_output_name", 2, "the plan has no output named 'nope'")
def _(ctx):
    p = ctx.write("model.plan", bytes(plan_bytes(ctx)))
    os.makedirs(ctx.path("out"), exist_ok=True)
    return ["run", p, "--input", "x=" + x_input(ctx), "--output", "nope=" + ctx.path("out", "n.npy")], \
        [ctx.path("out", "n.npy")]


@case("plan_cuda_only_without_gpu_backend", 3, "compiled for CUDA only")
def _(ctx):
    data = plan_bytes(ctx)
    struct.pack_into("<I", data, 20, 2)  # targets: CUDA only
    return run_plan_argv(ctx, fix_plan_checksums(data))


@case("plan_bad_magic_is_not_onnx_either", 2, "not a valid ONNX model")
def _(ctx):
    data = plan_bytes(ctx)
    data[0:8] = b"DRTPLAX\0"
    return run_plan_argv(ctx, data)


# ================================================================================================
# Command lines and output files
# ================================================================================================
@case("cli_unknown_option", 1, "unknown option '--frobnicate'")
def _(ctx):
    return ["run", ctx.save_model("model.onnx", base_model()), "--frobnicate"], []


@case("cli_unknown_command", 1, "unknown command")
def _(ctx):
    return ["explode"], []


@case("cli_missing_model", 1, "missing MODEL.onnx")
def _(ctx):
    return ["run"], []


@case("cli_bad_shape_syntax", 1, "bad shape '2xfoo'")
def _(ctx):
    return ["compile", ctx.save_model("model.onnx", base_model()), "-o", ctx.path("m.plan"), "--shape",
            "x=2xfoo"], [ctx.path("m.plan")]


@case("cli_shape_without_name", 1, "--shape expects NAME=DIMS")
def _(ctx):
    return ["run", ctx.save_model("model.onnx", base_model()), "--shape", "2x3"], []


@case("cli_shape_rank_overflow", 1, "more than 8 dims")
def _(ctx):
    return ["run", ctx.save_model("model.onnx", base_model()), "--shape", "x=1x1x1x1x1x1x1x1x1"], []


@case("cli_shape_negative_dim", 1, "bad shape '-1x3'")
def _(ctx):
    return ["run", ctx.save_model("model.onnx", base_model()), "--shape", "x=-1x3"], []


@case("cli_shape_dim_overflow", 1, "bad shape")
def _(ctx):
    return ["run", ctx.save_model("model.onnx", base_model()), "--shape", "x=99999999999999999999x3"], []


@case("cli_shape_unknown_name", 2, "--shape nosuch")
def _(ctx):
    return ["compile", ctx.save_model("model.onnx", base_model()), "-o", ctx.path("m.plan"), "--shape",
            "nosuch=2x2"], [ctx.path("m.plan")]


@case("cli_option_missing_value", 1, "needs a value")
def _(ctx):
    return ["run", ctx.save_model("model.onnx", base_model()), "--input"], []


@case("cli_input_without_equals", 1, "--input expects NAME=FILE")
def _(ctx):
    return ["run", ctx.save_model("model.onnx", base_model()), "--input", x_input(ctx)], []


@case("cli_threads_not_a_number", 1, "--threads expects a number")
def _(ctx):
    return ["run", ctx.save_model("model.onnx", base_model()), "--threads", "many"], []


@case("cli_max_memory_bad_suffix", 1, "the suffix must be K, M, G or T")
def _(ctx):
    return ["run", ctx.save_model("model.onnx", base_model()), "--max-memory", "12Q"], []


@case("cli_max_memory_overflow", 1, "too large")
def _(ctx):
    return ["compile", ctx.save_model("model.onnx", base_model()), "-o", ctx.path("m.plan"), "--max-memory",
            "99999999999999999999T"], [ctx.path("m.plan")]


@case("cli_output_and_output_dir", 1, "either --output or --output-dir")
def _(ctx):
    return ["run", ctx.save_model("model.onnx", base_model()), "--output", "y=a.npy", "--output-dir", ctx.dir], []


@case("cli_compile_target_cuda_unavailable", 3, "--target cuda: NVRTC")
def _(ctx):
    # without libnvrtc (the only thing --target cuda needs; no GPU is involved)
    return ["compile", ctx.save_model("model.onnx", base_model()), "-o", ctx.path("m.plan"), "--target", "cuda",
            "--shape", "batch=1"], [ctx.path("m.plan")], {"DRT_NVRTC_LIBRARY": ctx.path("no-libnvrtc.so")}


@case("cli_compile_cuda_bad_arch", 2, "is not of the form sm_XX")
def _(ctx):
    return ["compile", ctx.save_model("model.onnx", base_model()), "-o", ctx.path("m.plan"), "--target", "cuda",
            "--arch", "sm_80,ampere"], [ctx.path("m.plan")]


@case("cli_compile_missing_output", 1, "missing -o MODEL.plan")
def _(ctx):
    return ["compile", ctx.save_model("model.onnx", base_model())], []


@case("out_run_unwritable_dir", 2, "cannot create")
def _(ctx):
    d = unwritable_dir(ctx)
    mp = ctx.save_model("model.onnx", base_model())
    return ["run", mp, "--input", "x=" + x_input(ctx), "--output", "y=" + os.path.join(d, "drt_y.npy")], \
        [os.path.join(d, "drt_y.npy")]


@case("out_run_nonexistent_dir", 2, "cannot create")
def _(ctx):
    mp = ctx.save_model("model.onnx", base_model())
    return ["run", mp, "--input", "x=" + x_input(ctx), "--output", "y=" + ctx.path("no", "such", "y.npy")], \
        [ctx.path("no", "such", "y.npy")]


@case("out_run_output_dir_missing", 2, "is not a directory")
def _(ctx):
    mp = ctx.save_model("model.onnx", base_model())
    return ["run", mp, "--input", "x=" + x_input(ctx), "--output-dir", ctx.path("nodir")], [ctx.path("nodir")]


@case("out_run_output_under_a_file", 2, "Not a directory")
def _(ctx):
    f = ctx.write("afile", b"x")
    mp = ctx.save_model("model.onnx", base_model())
    return ["run", mp, "--input", "x=" + x_input(ctx), "--output", "y=" + os.path.join(f, "y.npy")], []


def two_output_model():
    return mk([helper.make_node("Relu", ["x"], ["y"]), helper.make_node("Neg", ["x"], ["z"])],
              [vi("x", [2, 3])], [vi("y", None), vi("z", None)])


@case("out_second_output_fails_first_removed", 2, "cannot create")
def _(ctx):
    os.makedirs(ctx.path("out"), exist_ok=True)
    mp = ctx.save_model("model.onnx", two_output_model())
    return ["run", mp, "--input", "x=" + x_input(ctx), "--no-specialize", "--output", "y=" + ctx.path("out", "y.npy"),
            "--output", "z=" + ctx.path("no", "such", "z.npy")], [ctx.path("out", "y.npy")]


@case("out_plan_second_output_fails_first_removed", 2, "cannot create")
def _(ctx):
    p = ctx.compile(ctx.save_model("two.onnx", two_output_model()), "two.plan")
    os.makedirs(ctx.path("out"), exist_ok=True)
    return ["run", p, "--input", "x=" + x_input(ctx), "--output", "y=" + ctx.path("out", "y.npy"),
            "--output", "z=" + ctx.path("no", "such", "z.npy")], [ctx.path("out", "y.npy")]


@case("out_compile_unwritable_dir", 2, "cannot create")
def _(ctx):
    d = unwritable_dir(ctx)
    mp = ctx.save_model("model.onnx", base_model())
    return ["compile", mp, "-o", os.path.join(d, "drt_m.plan"), "--shape", "batch=1"], \
        [os.path.join(d, "drt_m.plan")]


@case("out_compile_nonexistent_dir", 2, "cannot create")
def _(ctx):
    mp = ctx.save_model("model.onnx", base_model())
    return ["compile", mp, "-o", ctx.path("no", "such", "m.plan"), "--shape", "batch=1"], \
        [ctx.path("no", "such", "m.plan")]


@case("out_plan_run_unwritable_dir", 2, "cannot create")
def _(ctx):
    d = unwritable_dir(ctx)
    p = ctx.write("model.plan", bytes(plan_bytes(ctx)))
    return ["run", p, "--input", "x=" + x_input(ctx), "--output", "y=" + os.path.join(d, "drt_y.npy")], \
        [os.path.join(d, "drt_y.npy")]


@case("inspect_image_missing_file", 2, "cannot open")
def _(ctx):
    return ["inspect", "--image", "sm_90", ctx.path("missing.plan")], []


@case("inspect_image_no_cuda_images", 2, "no sm_90 image in the plan (it has: no CUDA images)")
def _(ctx):
    return ["inspect", "--image", "sm_90", ctx.write("model.plan", bytes(plan_bytes(ctx)))], []


@case("inspect_cuda_source_of_onnx", 1, "is not a distilrt plan")
def _(ctx):
    return ["inspect", "--cuda-source", ctx.save_model("model.onnx", base_model())], []


# ================================================================================================
SANITIZER_MARKS = ("AddressSanitizer", "LeakSanitizer", "UndefinedBehaviorSanitizer", "ThreadSanitizer",
                   "runtime error:", "MemorySanitizer")


def snapshot(root):
    files = set()
    for d, _, names in os.walk(root):
        for n in names:
            files.add(os.path.join(d, n))
    return files


def run_case(drt, name, want_rc, want_msg, fn, verbose):
    root = tempfile.mkdtemp(prefix="drt-malformed-%s-" % name)
    ctx = Ctx(root, drt)
    try:
        try:
            res = fn(ctx)  # (argv, outputs) or (argv, outputs, extra environment)
            argv, outputs = res[0], res[1]
            env = dict(os.environ, **res[2]) if len(res) > 2 else None
        except Exception as e:  # noqa: BLE001 - a broken setup is a failure of the case
            return "setup failed: %s" % e
        before = snapshot(root)
        try:
            r = subprocess.run([drt, *argv], capture_output=True, text=True, timeout=60,
                               errors="replace", env=env)
        except subprocess.TimeoutExpired:
            return "timed out (hang?)"
        err = r.stderr
        if verbose:
            print("    $ drt " + " ".join(argv))
            for line in err.strip().splitlines()[-3:]:
                print("    | " + line)
        if r.returncode < 0:
            return "killed by signal %d" % -r.returncode
        for mark in SANITIZER_MARKS:
            if mark in err:
                return "sanitizer report (%s): %s" % (mark, err.strip()[-400:])
        if r.returncode != want_rc:
            return "exit %d, expected %d; stderr: %s" % (r.returncode, want_rc, err.strip()[-300:])
        if want_msg and want_msg not in err:
            return "stderr lacks %r: %s" % (want_msg, err.strip()[-300:])
        if r.returncode != 0:
            for p in outputs:
                if os.path.exists(p):
                    return "failed command left %s behind" % p
            new = sorted(snapshot(root) - before)
            if new:
                return "failed command left files behind: %s" % ", ".join(os.path.relpath(p, root) for p in new)
            for p in outputs:
                d = os.path.dirname(p)
                if os.path.isdir(d):
                    stray = [n for n in os.listdir(d) if ".tmp." in n]
                    if stray:
                        return "temporary files left in %s: %s" % (d, stray)
        return None
    finally:
        for d, _, _ in os.walk(root):
            try:
                os.chmod(d, 0o755)
            except OSError:
                pass
        shutil.rmtree(root, ignore_errors=True)
        for d in ctx.extra_dirs:
            shutil.rmtree(d, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--drt", required=True, help="path to the drt binary")
    ap.add_argument("--filter", default="", help="only cases whose name matches this regex")
    ap.add_argument("-v", "--verbose", action="store_true", help="print each command and its last stderr lines")
    a = ap.parse_args()
    drt = os.path.abspath(a.drt)
    if not os.access(drt, os.X_OK):
        print("run_malformed: %s is not executable" % drt)
        return 1
    passed = failed = 0
    for name, rc, msg, fn in CASES:
        if a.filter and not re.search(a.filter, name):
            continue
        why = run_case(drt, name, rc, msg, fn, a.verbose)
        if why is None:
            passed += 1
            print("ok    %s" % name)
        else:
            failed += 1
            print("FAIL  %s: %s" % (name, why))
        sys.stdout.flush()
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed or passed == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
