#!/usr/bin/env python3
"""Generates the ONNX fixtures for tests/unit/test_frontend.c into tests/unit/data/frontend/.

Each model is tiny (well under 10 KB) and exercises one corner of the loader: every initializer
encoding, external data (valid and hostile), every Constant form, attributes of all types,
symbolic input dims, IR < 4 initializer-as-input, and the error cases. Values are fixed (no
randomness beyond a seeded generator for the garbage file) so the C test asserts exact contents.

Run: python3 tests/unit/data/make_frontend_models.py
"""
import os
import struct

import numpy as np
import onnx
from onnx import TensorProto, helper

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "frontend")
OPSET = 17


def vi(name, elem=TensorProto.FLOAT, shape=(2, 3)):
    return helper.make_tensor_value_info(name, elem, shape)


def model(nodes, inputs, outputs, inits=(), opset=OPSET, ir=8, name="g", **kw):
    g = helper.make_graph(nodes, name, inputs, outputs, initializer=list(inits))
    m = helper.make_model(g, opset_imports=[helper.make_operatorsetid("", opset)], **kw)
    m.ir_version = ir
    return m


def save(m, fname):
    path = os.path.join(OUT, fname)
    with open(path, "wb") as f:
        f.write(m.SerializeToString())
    assert os.path.getsize(path) < 10 * 1024, fname
    return path


def tensor(name, dtype, dims):
    t = TensorProto()
    t.name = name
    t.data_type = dtype
    t.dims.extend(dims)
    return t


def identity_model(inits, outputs, **kw):
    """x -> Identity -> y, plus initializers exposed as graph outputs."""
    nodes = [helper.make_node("Identity", ["x"], ["y"], name="id")]
    outs = [vi("y")] + [helper.make_tensor_value_info(o, TensorProto.UNDEFINED, None) for o in outputs]
    return model(nodes, [vi("x")], outs, inits, **kw)


def f16_bits(vals):
    return [int(b) for b in np.array(vals, dtype=np.float16).view(np.uint16)]


def bf16_bits(vals):
    return [int(b) >> 16 for b in np.array(vals, dtype=np.float32).view(np.uint32)]


def make_initializers():
    inits = []
    t = tensor("f32_typed", TensorProto.FLOAT, [2, 3]); t.float_data.extend([1.5, -2, 3, 4, 5, 6.25]); inits.append(t)
    t = tensor("f32_raw", TensorProto.FLOAT, [2, 2]); t.raw_data = np.array([0.5, -1, 2, 1e-3], np.float32).tobytes(); inits.append(t)
    t = tensor("i32_typed", TensorProto.INT32, [3]); t.int32_data.extend([-7, 0, 2147483647]); inits.append(t)
    t = tensor("i8_typed", TensorProto.INT8, [3]); t.int32_data.extend([-128, 5, 127]); inits.append(t)
    t = tensor("u8_typed", TensorProto.UINT8, [3]); t.int32_data.extend([0, 200, 255]); inits.append(t)
    t = tensor("i16_typed", TensorProto.INT16, [2]); t.int32_data.extend([-32768, 1234]); inits.append(t)
    t = tensor("u16_typed", TensorProto.UINT16, [2]); t.int32_data.extend([65535, 7]); inits.append(t)
    t = tensor("bool_typed", TensorProto.BOOL, [3]); t.int32_data.extend([1, 0, 1]); inits.append(t)
    t = tensor("f16_typed", TensorProto.FLOAT16, [3]); t.int32_data.extend(f16_bits([1.0, -2.5, 65504.0])); inits.append(t)
    t = tensor("bf16_typed", TensorProto.BFLOAT16, [2]); t.int32_data.extend(bf16_bits([1.0, -3.0])); inits.append(t)
    t = tensor("i64_typed", TensorProto.INT64, [2]); t.int64_data.extend([-(2 ** 40), 9]); inits.append(t)
    t = tensor("f64_typed", TensorProto.DOUBLE, [2]); t.double_data.extend([0.1, -1e300]); inits.append(t)
    t = tensor("u32_typed", TensorProto.UINT32, [2]); t.uint64_data.extend([4294967295, 3]); inits.append(t)
    t = tensor("u64_typed", TensorProto.UINT64, [1]); t.uint64_data.extend([2 ** 64 - 1]); inits.append(t)
    t = tensor("f16_raw", TensorProto.FLOAT16, [2]); t.raw_data = np.array([0.5, -4.0], np.float16).tobytes(); inits.append(t)
    t = tensor("bf16_raw", TensorProto.BFLOAT16, [2]); t.raw_data = struct.pack("<2H", *bf16_bits([2.0, -0.5])); inits.append(t)
    t = tensor("i8_raw", TensorProto.INT8, [2]); t.raw_data = np.array([-1, 100], np.int8).tobytes(); inits.append(t)
    t = tensor("bool_raw", TensorProto.BOOL, [2]); t.raw_data = bytes([0, 1]); inits.append(t)
    t = tensor("i64_raw", TensorProto.INT64, [2]); t.raw_data = np.array([-5, 2 ** 50], np.int64).tobytes(); inits.append(t)
    t = tensor("f64_raw", TensorProto.DOUBLE, [1]); t.raw_data = np.array([2.75], np.float64).tobytes(); inits.append(t)
    t = tensor("u32_raw", TensorProto.UINT32, [1]); t.raw_data = np.array([3000000000], np.uint32).tobytes(); inits.append(t)
    t = tensor("scalar", TensorProto.FLOAT, []); t.float_data.append(42.0); inits.append(t)
    t = tensor("empty", TensorProto.FLOAT, [0, 3]); inits.append(t)
    save(identity_model(inits, ["f32_typed", "scalar"]), "init_encodings.onnx")

    # element count / byte size mismatches
    t = tensor("short", TensorProto.FLOAT, [2, 3]); t.float_data.extend([1, 2, 3])
    save(identity_model([t], []), "init_bad_count.onnx")
    t = tensor("rawbad", TensorProto.FLOAT, [4]); t.raw_data = b"\0" * 12
    save(identity_model([t], []), "init_bad_raw.onnx")
    t = tensor("negdim", TensorProto.FLOAT, [2, -3])
    save(identity_model([t], []), "init_neg_dim.onnx")
    t = tensor("strs", TensorProto.STRING, [1]); t.string_data.append(b"hi")
    save(identity_model([t], []), "init_string.onnx")
    t = tensor("c64", TensorProto.COMPLEX64, [1]); t.float_data.extend([1, 2])
    save(identity_model([t], []), "init_complex.onnx")


def make_external():
    # ext_data.bin: 16 bytes of padding, then w1 (float32 [2,2]), then w2 (int64 [3]) to the end
    w1 = np.array([1, 2, 3, 4], np.float32)
    w2 = np.array([-1, 0, 2 ** 33], np.int64)
    blob = b"\xab" * 16 + w1.tobytes() + w2.tobytes()
    with open(os.path.join(OUT, "ext_data.bin"), "wb") as f:
        f.write(blob)
    os.makedirs(os.path.join(OUT, "weights"), exist_ok=True)
    w3 = np.array([0.25, -0.75], np.float32)
    with open(os.path.join(OUT, "weights", "w3.bin"), "wb") as f:
        f.write(w3.tobytes())

    def ext(name, dtype, dims, location, offset=None, length=None):
        t = tensor(name, dtype, dims)
        t.data_location = TensorProto.EXTERNAL
        kv = [("location", location)]
        if offset is not None:
            kv.append(("offset", str(offset)))
        if length is not None:
            kv.append(("length", str(length)))
        for k, v in kv:
            e = t.external_data.add()
            e.key, e.value = k, v
        return t

    save(identity_model([ext("w1", TensorProto.FLOAT, [2, 2], "ext_data.bin", 16, 16),
                         ext("w2", TensorProto.INT64, [3], "ext_data.bin", 32),
                         ext("w3", TensorProto.FLOAT, [2], "weights/w3.bin")], ["w1"]), "ext_valid.onnx")
    save(identity_model([ext("wabs", TensorProto.FLOAT, [2], "/tmp/drt_abs.bin")], []), "ext_abs.onnx")
    save(identity_model([ext("wdot", TensorProto.FLOAT, [2], "weights/../../frontend/ext_data.bin")], []),
         "ext_dotdot.onnx")
    save(identity_model([ext("wend", TensorProto.FLOAT, [4], "ext_data.bin", 48, 16)], []), "ext_past_end.onnx")
    save(identity_model([ext("wfar", TensorProto.FLOAT, [1], "ext_data.bin", 2 ** 63 - 2, 4)], []),
         "ext_huge_offset.onnx")
    save(identity_model([ext("wlen", TensorProto.FLOAT, [3], "ext_data.bin", 0, 8)], []), "ext_bad_length.onnx")
    save(identity_model([ext("wrest", TensorProto.FLOAT, [3], "ext_data.bin", 16)], []), "ext_rest_mismatch.onnx")
    save(identity_model([ext("wmiss", TensorProto.FLOAT, [1], "missing.bin")], []), "ext_missing.onnx")
    # used by the test in a temporary folder holding a sparse far.bin: an offset past 4 GiB
    save(identity_model([ext("wfar4g", TensorProto.FLOAT, [4], "far.bin", 3 * 2 ** 32 + 8, 16)], []), "ext_far.onnx")
    # used by the test in a temporary folder where link.bin is a symlink or a directory
    save(identity_model([ext("wlink", TensorProto.FLOAT, [4], "link.bin", 16, 16)], []), "ext_link.onnx")


def make_constants():
    value = helper.make_tensor("cv", TensorProto.INT32, [2, 2], [1, -2, 3, -4])
    nodes = [
        helper.make_node("Constant", [], ["c_tensor"], name="k0", value=value),
        helper.make_node("Constant", [], ["c_float"], name="k1", value_float=2.5),
        helper.make_node("Constant", [], ["c_floats"], name="k2", value_floats=[1.0, -0.5, 3.0]),
        helper.make_node("Constant", [], ["c_int"], name="k3", value_int=-9),
        helper.make_node("Constant", [], ["c_ints"], name="k4", value_ints=[4, 5, 6, 7]),
        helper.make_node("Add", ["x", "c_float"], ["y"], name="add"),
    ]
    outs = [vi("y")] + [helper.make_tensor_value_info(n, TensorProto.UNDEFINED, None)
                        for n in ["c_tensor", "c_floats", "c_int", "c_ints"]]
    save(model(nodes, [vi("x")], outs), "constants.onnx")
    for attr, kw in [("value_string", {"value_string": "hello"}),
                     ("value_strings", {"value_strings": ["a", "b"]})]:
        nodes = [helper.make_node("Constant", [], ["c"], name="ks", **kw),
                 helper.make_node("Identity", ["x"], ["y"], name="id")]
        save(model(nodes, [vi("x")], [vi("y")]), f"const_{attr}.onnx")
    sp = helper.make_sparse_tensor(helper.make_tensor("v", TensorProto.FLOAT, [1], [1.0]),
                                   helper.make_tensor("i", TensorProto.INT64, [1], [0]), [4])
    nodes = [helper.make_node("Constant", [], ["c"], name="ksp", sparse_value=sp),
             helper.make_node("Identity", ["x"], ["y"], name="id")]
    save(model(nodes, [vi("x")], [vi("y")]), "const_sparse.onnx")


def make_attributes():
    t = helper.make_tensor("t_attr", TensorProto.FLOAT16, [2], np.array([1.0, -2.0], np.float16), raw=False)
    n = helper.make_node("Identity", ["x"], ["y"], name="attrs",
                         a_float=0.25, a_int=-3, a_string="hello", a_tensor=t, a_floats=[1.0, 2.5],
                         a_ints=[7, -8, 9], a_strings=["ab", "cde"])
    save(model([n], [vi("x")], [vi("y")]), "attrs.onnx")
    sub = helper.make_graph([helper.make_node("Identity", ["x"], ["z"])], "sub", [], [vi("z")])
    n = helper.make_node("Identity", ["x"], ["y"], name="gattr", body=sub)
    save(model([n], [vi("x")], [vi("y")]), "attr_graph.onnx")


def make_inputs():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, None, "H"])
    x.type.tensor_type.shape.dim[2].Clear()  # neither value nor name
    u = helper.make_tensor_value_info("u", TensorProto.INT64, None)  # no shape at all
    s = helper.make_tensor_value_info("s", TensorProto.FLOAT16, [])
    nodes = [helper.make_node("Identity", ["x"], ["y"], name="id"),
             helper.make_node("Identity", ["u"], ["v"], name="id2"),
             helper.make_node("Identity", ["s"], ["t"], name="id3")]
    save(model(nodes, [x, u, s], [vi("y", shape=None), vi("v", TensorProto.INT64, None),
                                  vi("t", TensorProto.FLOAT16, [])]), "dim_param.onnx")

    w = helper.make_tensor("w", TensorProto.FLOAT, [2, 3], [1, 2, 3, 4, 5, 6])
    nodes = [helper.make_node("Add", ["x", "w"], ["y"], name="add")]
    save(model(nodes, [vi("x"), vi("w")], [vi("y")], [w], ir=3, opset=8), "ir3_init_input.onnx")

    seq = helper.make_tensor_sequence_value_info("x", TensorProto.FLOAT, None)
    save(model([helper.make_node("Identity", ["x"], ["y"])], [seq], [vi("y")]), "input_sequence.onnx")
    st = helper.make_tensor_value_info("x", TensorProto.STRING, [1])
    save(model([helper.make_node("Identity", ["x"], ["y"])], [st], [vi("y")]), "input_string.onnx")
    r9 = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1] * 9)
    save(model([helper.make_node("Identity", ["x"], ["y"])], [r9], [vi("y")]), "input_rank9.onnx")
    nd = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, -1])
    save(model([helper.make_node("Identity", ["x"], ["y"])], [nd], [vi("y")]), "input_neg_dim.onnx")


def make_structure():
    # consumer listed before producer, an omitted optional input in the middle, trailing
    # omitted inputs, and a trailing empty output name
    mx = helper.make_tensor("mx", TensorProto.FLOAT, [], [6.0])
    nodes = [
        helper.make_node("Clip", ["a", "", "mx"], ["b"], name="clip"),
        helper.make_node("Dropout", ["b", "", ""], ["c", ""], name="drop"),
        helper.make_node("Neg", ["x"], ["a"], name="neg"),
    ]
    save(model(nodes, [vi("x")], [vi("c")], [mx]), "order.onnx")

    def err(fname, nodes, outs=("y",), inits=(), **kw):
        save(model(nodes, [vi("x")], [vi(o) for o in outs], inits, **kw), fname)

    err("unknown_op.onnx", [helper.make_node("FooBar", ["x"], ["y"], name="foo")])
    err("unknown_domain.onnx", [helper.make_node("FusedGelu", ["x"], ["y"], name="X", domain="com.microsoft")])
    err("undefined_input.onnx", [helper.make_node("Add", ["x", "nope"], ["y"], name="add")])
    err("duplicate_output.onnx", [helper.make_node("Neg", ["x"], ["y"], name="n1"),
                                  helper.make_node("Relu", ["x"], ["y"], name="n2")])
    err("duplicate_init.onnx", [helper.make_node("Neg", ["x"], ["w"], name="n1"),
                                helper.make_node("Relu", ["w"], ["y"], name="n2")],
        inits=[helper.make_tensor("w", TensorProto.FLOAT, [1], [1.0])])
    err("missing_output.onnx", [helper.make_node("Neg", ["x"], ["y"], name="n1")], outs=("y", "zz"))
    err("opset_too_new.onnx", [helper.make_node("Neg", ["x"], ["y"], name="n1")], opset=99)

    f = helper.make_function("custom", "MyFn", ["a"], ["b"], [helper.make_node("Neg", ["a"], ["b"])],
                             [helper.make_operatorsetid("", OPSET)])
    g = helper.make_graph([helper.make_node("MyFn", ["x"], ["y"], name="call", domain="custom")], "g",
                          [vi("x")], [vi("y")])
    m = helper.make_model(g, opset_imports=[helper.make_operatorsetid("", OPSET),
                                            helper.make_operatorsetid("custom", 1)], functions=[f])
    save(m, "local_function.onnx")


def make_bad_bytes():
    good = model([helper.make_node("Neg", ["x"], ["y"], name="n1")], [vi("x")], [vi("y")]).SerializeToString()
    with open(os.path.join(OUT, "truncated.onnx"), "wb") as f:
        f.write(good[: len(good) // 2])
    rng = np.random.default_rng(1234)
    with open(os.path.join(OUT, "garbage.onnx"), "wb") as f:
        f.write(b"\xff\xff\xff\xff" + rng.integers(0, 256, 256, dtype=np.uint8).tobytes())
    with open(os.path.join(OUT, "empty.onnx"), "wb"):
        pass
    # subgraphs nested 40 deep (graph -> node -> attribute -> graph ...), more than the loader's
    # depth limit; written as raw wire bytes because the Python protobuf refuses this depth
    def varint(v):
        out = b""
        while True:
            b = v & 0x7F
            v >>= 7
            if v:
                out += bytes([b | 0x80])
            else:
                return out + bytes([b])

    def ld(field, payload):
        return varint(field << 3 | 2) + varint(len(payload)) + payload

    graph = ld(1, ld(1, b"x") + ld(2, b"y") + ld(4, b"Identity"))  # GraphProto.node
    for _ in range(40):
        attr = ld(1, b"g") + varint(20 << 3) + varint(5) + ld(6, graph)  # name, type=GRAPH, g
        graph = ld(1, ld(1, b"c") + ld(2, b"y") + ld(4, b"If") + ld(5, attr))
    blob = varint(1 << 3) + varint(8) + ld(8, varint(2 << 3) + varint(OPSET)) + ld(7, graph)
    with open(os.path.join(OUT, "deep_nesting.onnx"), "wb") as f:
        f.write(blob)
    assert len(blob) < 10 * 1024


def main():
    os.makedirs(OUT, exist_ok=True)
    make_initializers()
    make_external()
    make_constants()
    make_attributes()
    make_inputs()
    make_structure()
    make_bad_bytes()
    print("wrote", len(os.listdir(OUT)), "entries to", OUT)


if __name__ == "__main__":
    main()
