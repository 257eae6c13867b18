"""Per-op cases for run_emu.py --ops: small ONNX graphs (one op, or a pattern that the passes fuse
into one drt.* node), odd shapes, random seeded inputs. Each case adds its nodes to a shared model
(values prefixed "<case>/", output named "<case>"), so one compile covers a whole family.

A case's build(b) function uses the builder b:
  x = b.input("x", array)          graph input (fed from a .npy), returns the value name
  w = b.init("w", array)           initializer (a weight)
  y = b.node("Op", [x, w], attr=..)  one node, returns its output name (outputs=N: a list)
  b.output(y [, onnx elem type])   marks y as the case's output (several: <case>.1, <case>.2)
"""
import zlib

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

F = TensorProto.FLOAT
I64 = TensorProto.INT64
I32 = TensorProto.INT32
BOOL = TensorProto.BOOL


class Case:
    def __init__(self, name, doc, build, opset=21, tol=None, xfail=None):
        """tol: {precision: tolerance} overrides; xfail: {precision: reason} for known precision
        limitations of the design (reported as XFAIL, not counted as failures)."""
        self.name, self.doc, self.build, self.opset = name, doc, build, opset
        self.tol, self.xfail = tol or {}, xfail or {}


class Builder:
    def __init__(self, case, rng):
        self.case, self.rng = case, rng
        self.nodes, self.inputs, self.inits, self.outputs, self.feeds = [], [], [], [], {}
        self.k = 0

    def v(self, local):
        return "%s/%s" % (self.case.name, local)

    def input(self, local, arr):
        name = self.v(local)
        arr = np.asarray(arr)
        self.inputs.append(helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(arr.dtype), arr.shape))
        self.feeds[name] = arr
        return name

    def init(self, local, arr):
        name = self.v(local)
        self.inits.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    def const_i64(self, local, vals):
        return self.init(local, np.asarray(vals, dtype=np.int64))

    def node(self, op, ins, outputs=1, domain=None, **attrs):
        self.k += 1
        outs = [self.v("%s%d_%d" % (op.lower(), self.k, i)) for i in range(outputs)]
        self.nodes.append(helper.make_node(op, ins, outs, name=self.v("n%d_%s" % (self.k, op)), domain=domain, **attrs))
        return outs[0] if outputs == 1 else outs

    def output(self, value, elem=F):
        n = len(self.outputs)
        name = self.case.name if n == 0 else "%s.%d" % (self.case.name, n)
        self.nodes.append(helper.make_node("Identity", [value], [name], name=self.v("out%d" % n)))
        self.outputs.append(helper.make_tensor_value_info(name, elem, None))

    # random data
    def randn(self, *shape, scale=1.0):
        return (self.rng.standard_normal(shape) * scale).astype(np.float32)

    def uniform(self, lo, hi, *shape):
        return self.rng.uniform(lo, hi, shape).astype(np.float32)


def build_model(cases, opset, path):
    """Writes one model with every case; returns (feeds {name: array}, [output names])."""
    nodes, inputs, inits, outputs, feeds = [], [], [], [], {}
    for c in cases:
        rng = np.random.default_rng(zlib.crc32(c.name.encode()))
        b = Builder(c, rng)
        c.build(b)
        nodes += b.nodes
        inputs += b.inputs
        inits += b.inits
        outputs += b.outputs
        feeds.update(b.feeds)
    g = helper.make_graph(nodes, "ops", inputs, outputs, inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], producer_name="drt-cuda-emu")
    m.ir_version = 10 if opset >= 21 else 8
    onnx.save(m, path)
    return feeds, [o.name for o in outputs]


# ---- elementwise -----------------------------------------------------------------------------------
def unary(op, lo=-3.0, hi=3.0, shape=(3, 5, 67), **attrs):
    def build(b):
        b.output(b.node(op, [b.input("x", b.uniform(lo, hi, *shape))], **attrs))
    return build


def binary(op, sa, sb, lo=-2.0, hi=2.0, blo=None, bhi=None):
    def build(b):
        x = b.input("a", b.uniform(lo, hi, *sa))
        y = b.input("b", b.uniform(blo if blo is not None else lo, bhi if bhi is not None else hi, *sb))
        b.output(b.node(op, [x, y]))
    return build


def int_binary(op, dtype, elem):
    def build(b):
        x = b.input("a", b.rng.integers(-50, 50, (4, 33)).astype(dtype))
        y = b.input("b", b.rng.integers(1, 9, (33,)).astype(dtype))
        b.output(b.node(op, [x, y]), elem)
    return build


def b_pow_const(b):
    x = b.input("x", b.uniform(0.1, 2.0, 7, 131))
    b.output(b.node("Pow", [x, b.init("p", np.array(2.0, np.float32))]))
    b.output(b.node("Pow", [x, b.init("q", np.array(0.5, np.float32))]))


def b_clip(b):
    x = b.input("x", b.uniform(-3, 3, 5, 77))
    b.output(b.node("Clip", [x, b.init("lo", np.array(-1.0, np.float32)), b.init("hi", np.array(0.5, np.float32))]))


def b_where(b):
    c = b.input("c", b.rng.random((5, 1, 17)) > 0.5)
    x = b.input("x", b.randn(5, 9, 17))
    b.output(b.node("Where", [c, x, b.init("y", np.array(-7.5, np.float32))]))


def b_cast(b):
    # multiples of 1/4 in [-40, 40]: exact in fp16 and bf16 storage, so truncation is comparable
    x = b.input("x", np.round(b.uniform(-40, 40, 6, 71) * 4) / 4)
    b.output(b.node("Cast", [x], to=I32), I32)
    b.output(b.node("Cast", [x], to=I64), I64)
    b.output(b.node("Cast", [x], to=BOOL), BOOL)
    i = b.input("i", b.rng.integers(-1000, 1000, (6, 71)).astype(np.int64))
    b.output(b.node("Cast", [i], to=F))
    h = b.node("Cast", [x], to=TensorProto.FLOAT16)
    b.output(b.node("Cast", [h], to=F))


def b_compare(b):
    x = b.input("x", b.randn(4, 37))
    y = b.input("y", b.randn(37))
    b.output(b.node("Greater", [x, y]), BOOL)
    b.output(b.node("Cast", [b.node("Less", [x, y])], to=F))
    b.output(b.node("Not", [b.node("Equal", [b.node("Cast", [x], to=I64), b.node("Cast", [y], to=I64)])]), BOOL)


def b_gelu_erf(b):
    x = b.input("x", b.randn(2, 13, 96))
    t = b.node("Div", [x, b.init("s2", np.array(1.4142135, np.float32))])
    t = b.node("Add", [b.node("Erf", [t]), b.init("one", np.array(1.0, np.float32))])
    b.output(b.node("Mul", [b.node("Mul", [x, t]), b.init("h", np.array(0.5, np.float32))]))


def b_gelu_tanh(b):
    x = b.input("x", b.randn(3, 77))
    x3 = b.node("Mul", [b.node("Pow", [x, b.init("three", np.array(3.0, np.float32))]),
                        b.init("c", np.array(0.044715, np.float32))])
    t = b.node("Tanh", [b.node("Mul", [b.node("Add", [x, x3]), b.init("k", np.array(0.7978845608, np.float32))])])
    y = b.node("Mul", [b.node("Mul", [x, b.init("h", np.array(0.5, np.float32))]),
                       b.node("Add", [t, b.init("one", np.array(1.0, np.float32))])])
    b.output(y)


def b_silu(b):
    x = b.input("x", b.randn(2, 40, 9, 7))
    b.output(b.node("Mul", [x, b.node("Sigmoid", [x])]))


def b_timestep_embed(b):
    t = b.input("t", np.array([3.0, 517.0, 999.0], np.float32))
    freqs = b.init("f", np.exp(-np.log(10000.0) * np.arange(0, 40, dtype=np.float32) / 40).astype(np.float32))
    a = b.node("Mul", [b.node("Unsqueeze", [t, b.const_i64("ax", [1])]), freqs])
    b.output(b.node("Concat", [b.node("Cos", [a]), b.node("Sin", [a])], axis=-1))


def b_chain(b):
    x = b.input("x", b.randn(2, 7, 33))
    y = b.input("y", b.randn(7, 1))
    s = b.node("Sqrt", [b.node("Add", [b.node("Mul", [x, x]), b.init("e", np.array(1e-3, np.float32))])])
    b.output(b.node("Sub", [b.node("Div", [y, s]), b.node("Exp", [b.node("Neg", [b.node("Abs", [x])])])]))


def b_rotary_4d(b):
    x = b.input("x", b.randn(2, 3, 5, 16))
    pos = b.input("pos", np.array([[0, 3, 7, 1, 2], [5, 5, 0, 4, 6]], np.int64))
    ang = np.arange(8)[:, None] * np.exp(-np.arange(4) / 2.0)[None, :]
    cs = b.init("cos", np.cos(ang).astype(np.float32))
    sn = b.init("sin", np.sin(ang).astype(np.float32))
    b.output(b.node("RotaryEmbedding", [x, cs, sn, pos], rotary_embedding_dim=8))


def b_rotary_3d(b):
    x = b.input("x", b.randn(2, 5, 3 * 8))
    ang = b.uniform(-3, 3, 2, 5, 4)
    b.output(b.node("RotaryEmbedding", [x, b.input("cos", np.cos(ang).astype(np.float32)),
                                        b.input("sin", np.sin(ang).astype(np.float32))], num_heads=3, interleaved=1))


def b_new_activations(b):
    a, g = b.input("a", b.randn(3, 37)), b.input("g", b.randn(3, 37))
    b.output(b.node("SwiGLU", [a, g], alpha=1.5))
    b.output(b.node("Shrink", [b.input("s", b.randn(4, 29))], bias=0.25, lambd=0.5))
    b.output(b.node("ThresholdedRelu", [b.input("t", b.randn(4, 29))], alpha=0.3))
    b.output(b.node("Asinh", [b.node("Swish", [b.input("w", b.randn(4, 29))], alpha=0.8)]))


def b_qdq(b):
    x = b.input("x", b.randn(2, 6, 5, 7))
    s = b.init("s", np.linspace(0.01, 0.05, 6).astype(np.float32))
    z = b.init("z", np.array([0, 3, -5, 10, -2, 1], np.int8))
    q = b.node("QuantizeLinear", [x, s, z], axis=1)
    b.output(b.node("DequantizeLinear", [q, s, z], axis=1))
    xb = b.input("xb", b.randn(4, 8))
    sb = b.init("sb", np.array([[0.02, 0.03, 0.01, 0.04]] * 4, np.float32))
    zb = b.init("zb", np.array([[128, 120, 130, 127]] * 4, np.uint8))
    b.output(b.node("DequantizeLinear", [b.node("QuantizeLinear", [xb, sb, zb], axis=1, block_size=2), sb, zb],
                    axis=1, block_size=2))


def b_qdq_lowp(b):
    """float8 / int4: quantize, move the quantized tensor, dequantize (the host runs the nodes
    with low-precision operands); a constant float8 weight dequantized into a MatMul (folded)."""
    from onnx import TensorProto as TP  # noqa: PLC0415
    x = b.input("x", b.randn(3, 8, 5))
    q = b.node("QuantizeLinear", [x, b.init("s8", np.array(0.05, np.float32))], output_dtype=TP.FLOAT8E4M3FN)
    b.output(b.node("DequantizeLinear", [b.node("Transpose", [q], perm=[0, 2, 1]),
                                         b.init("s8b", np.array(0.05, np.float32))]))
    xb = b.input("xb", b.randn(4, 8))
    sb = b.init("sb4", np.array([[0.3, 0.2]] * 4, np.float32))
    q4 = b.node("QuantizeLinear", [xb, sb], axis=1, block_size=4, output_dtype=TP.INT4)
    b.output(b.node("DequantizeLinear", [q4, sb], axis=1, block_size=4))
    b.output(b.node("Cast", [b.node("Cast", [b.input("c", b.randn(6, 7))], to=TP.FLOAT8E5M2)], to=TP.FLOAT))
    # every rounding edge: the midpoints between neighbouring codes (ties to even), points a
    # quarter step off them, and values past the largest finite one (saturated); scale 1, so
    # DequantizeLinear returns the decoded code and a wrong code is a whole step off
    import ml_dtypes  # noqa: PLC0415 (onnx's own dependency)
    for name, t, fmt in (("e4m3", TP.FLOAT8E4M3FN, ml_dtypes.float8_e4m3fn), ("e5m2", TP.FLOAT8E5M2,
                         ml_dtypes.float8_e5m2), ("e2m1", TP.FLOAT4E2M1, ml_dtypes.float4_e2m1fn)):
        codes = np.arange(1 << (8 if name != "e2m1" else 4), dtype=np.uint8)
        vals = codes.view(fmt).astype(np.float64) if name != "e2m1" else \
            np.array([float(c) for c in codes.astype(np.uint8).view(fmt)], np.float64)
        pos = np.unique(vals[np.isfinite(vals) & (vals >= 0)])
        mids = (pos[1:] + pos[:-1]) / 2
        quarter = (pos[1:] - pos[:-1]) / 4
        edge = np.concatenate([mids, mids - quarter, mids + quarter, pos[-1:] * 1.5, pos[-1:] * 1e3])
        edge = np.concatenate([edge, -edge]).astype(np.float32)
        one = b.init("one_" + name, np.array(1.0, np.float32))
        q = b.node("QuantizeLinear", [b.input("edge_" + name, edge), one], output_dtype=t)
        b.output(b.node("DequantizeLinear", [q, one]))
    # float4 / float6 zero points (added when quantizing; float6 subtracts its own when dequantizing)
    for name, t, fmt in (("f4", TP.FLOAT4E2M1, ml_dtypes.float4_e2m1fn), ("f6", TP.FLOAT6E3M2,
                                                                          ml_dtypes.float6_e3m2fn)):
        # multiples of 1/8 and power-of-two scales: exact in fp16/bf16 storage too, so the 16-bit
        # plans quantize the same values (float4's steps are too coarse for rounded inputs)
        xs = b.input("xz_" + name, (b.rng.integers(-40, 40, (2, 4, 3)) / 8).astype(np.float32))
        sc = b.init("sz_" + name, np.array([0.5, 0.25, 1.0, 2.0], np.float32))
        zp = b.init("zz_" + name, np.array([1.5, -1.0, 0.5, 2.0], np.float32).astype(fmt))
        q = b.node("QuantizeLinear", [xs, sc, zp], axis=1)
        b.output(b.node("DequantizeLinear", [q, sc] + ([zp] if name == "f6" else []), axis=1))
    rng = np.random.default_rng(3)
    w8 = b.node("Cast", [b.init("w", (rng.standard_normal((5, 6)) * 0.5).astype(np.float32))], to=TP.FLOAT8E4M3FN)
    w = b.node("DequantizeLinear", [w8, b.init("ws", np.array(0.5, np.float32))])
    b.output(b.node("MatMul", [b.input("m", b.randn(4, 5)), w]))


ELEMENTWISE = [
    Case("add_bcast", "Add [2,3,37,5]+[37,1]", binary("Add", (2, 3, 37, 5), (37, 1))),
    Case("mul_bcast", "Mul [3,1,129]*[4,129]", binary("Mul", (3, 1, 129), (4, 129))),
    Case("sub_rank0", "Sub [1000]-[]", binary("Sub", (1000,), ())),
    Case("div", "Div [7,33]/[7,33] (divisor in [0.5,2])", binary("Div", (7, 33), (7, 33), blo=0.5, bhi=2.0)),
    Case("max_min", "Max/Min bcast", lambda b: (b.output(b.node("Max", [b.input("a", b.randn(5, 31)),
                                                                       b.input("b", b.randn(31))])),
                                                 b.output(b.node("Min", [b.input("c", b.randn(5, 31)),
                                                                         b.input("d", b.randn(5, 1))])))),
    Case("pow", "Pow x^2, x^0.5", b_pow_const),
    Case("sqrt", "Sqrt", unary("Sqrt", 0.01, 4.0)),
    Case("exp", "Exp", unary("Exp")),
    Case("log", "Log", unary("Log", 0.05, 5.0)),
    Case("erf", "Erf", unary("Erf")),
    Case("tanh", "Tanh", unary("Tanh")),
    Case("sigmoid", "Sigmoid", unary("Sigmoid", -8, 8)),
    Case("relu", "Relu", unary("Relu")),
    Case("cos_sin", "Cos, Sin", lambda b: (b.output(b.node("Cos", [b.input("x", b.uniform(-3.2, 3.2, 3, 41))])),
                                            b.output(b.node("Sin", [b.input("y", b.uniform(-3.2, 3.2, 3, 41))])))),
    Case("neg_abs_recip", "Neg, Abs, Reciprocal",
         lambda b: (b.output(b.node("Neg", [b.input("x", b.randn(3, 29))])),
                    b.output(b.node("Abs", [b.input("y", b.randn(3, 29))])),
                    b.output(b.node("Reciprocal", [b.input("z", b.uniform(0.5, 3, 3, 29))])))),
    Case("clip", "Clip [-1,0.5]", b_clip),
    Case("where", "Where(bool [5,1,17], x [5,9,17], scalar)", b_where),
    Case("int64_add", "Add int64 bcast", int_binary("Add", np.int64, I64)),
    Case("int32_mul", "Mul int32 bcast", int_binary("Mul", np.int32, I32)),
    Case("cast", "Cast float->int32/int64/bool/fp16, int64->float", b_cast),
    Case("compare", "Greater/Less/Equal/Not", b_compare),
    Case("gelu_erf", "x*0.5*(1+erf(x/sqrt2)) (fused)", b_gelu_erf),
    Case("gelu_tanh", "tanh GELU (fused)", b_gelu_tanh),
    Case("silu", "x*sigmoid(x) (fused)", b_silu),
    Case("chain", "Sub(Div(y, Sqrt(x*x+e)), Exp(-|x|)) (fused, bcast)", b_chain),
    # t = 517 and 999 are 516 and 1000 in bf16: per-sample scalar inputs keep float32 storage
    # (codegen.c choose_f32_storage) and the frequency table is read in fp32
    Case("timestep_embed", "cos/sin timestep embedding (t = 3, 517, 999)", b_timestep_embed),
    Case("rotary_4d", "RotaryEmbedding [2,3,5,16] partial (8), position_ids", b_rotary_4d, opset=23),
    Case("rotary_3d", "RotaryEmbedding [2,5,3*8] interleaved, per-token caches", b_rotary_3d, opset=23),
    # under fp16/bf16 the input is rounded to 16 bits before it is quantized, which moves values
    # near a bucket edge into the next bucket (one quantization step)
    Case("qdq", "QuantizeLinear -> DequantizeLinear, int8 per axis and uint8 blocked", b_qdq, opset=21,
         tol={"fp16": 1e-2, "bf16": 3e-2}),
    Case("swiglu_shrink", "SwiGLU, Shrink, ThresholdedRelu, Asinh(Swish) (one program)", b_new_activations, opset=24),
    # float8 has 3 mantissa bits: a 16-bit rounding of the input moves values across a
    # float8 rounding edge, one float8 step (up to 2^-4 relative)
    Case("qdq_lowp", "float8/int4 QuantizeLinear -> Transpose -> DequantizeLinear, Cast via float8, "
         "a float8 weight into MatMul", b_qdq_lowp, opset=24, tol={"fp16": 3e-2, "bf16": 5e-2}),
]


# ---- movement ----------------------------------------------------------------------------------------
def b_transpose(b):
    b.output(b.node("Transpose", [b.input("x", b.randn(2, 5, 7, 9))], perm=[0, 2, 1, 3]))
    b.output(b.node("Transpose", [b.input("y", b.randn(2, 7, 9, 5))], perm=[0, 3, 1, 2]))
    b.output(b.node("Transpose", [b.input("z", b.randn(33, 65))], perm=[1, 0]))
    b.output(b.node("Transpose", [b.input("w", b.randn(3, 4, 5, 6, 7))], perm=[4, 2, 0, 3, 1]))


def b_concat(b):
    x, y, z = b.input("x", b.randn(2, 3, 5)), b.input("y", b.randn(2, 7, 5)), b.input("z", b.randn(2, 1, 5))
    b.output(b.node("Concat", [x, y, z], axis=1))
    b.output(b.node("Concat", [b.input("p", b.randn(3, 17)), b.input("q", b.randn(3, 4))], axis=-1))


def b_split(b):
    x = b.input("x", b.randn(2, 3, 13, 4))
    o = b.node("Split", [x, b.const_i64("s", [2, 5, 6])], outputs=3, axis=2)
    for v in o:
        b.output(v)


def b_slice(b):
    x = b.input("x", b.randn(5, 19, 23))
    b.output(b.node("Slice", [x, b.const_i64("st", [1, 2]), b.const_i64("en", [4, 21]), b.const_i64("ax", [0, 2]),
                              b.const_i64("sp", [1, 3])]))
    b.output(b.node("Slice", [x, b.const_i64("st2", [-2]), b.const_i64("en2", [-100]), b.const_i64("ax2", [1]),
                              b.const_i64("sp2", [-2])]))


def b_pad(b):
    x = b.input("x", b.randn(1, 3, 5, 7))
    b.output(b.node("Pad", [x, b.const_i64("p", [0, 0, 1, 2, 0, 0, 2, 1]), b.init("v", np.array(0.5, np.float32))]))
    b.output(b.node("Pad", [b.input("y", b.randn(1, 2, 6, 5)), b.const_i64("p2", [0, 0, 2, 1, 0, 0, 1, 2])],
                    mode="reflect"))


def b_resize(b):
    x = b.input("x", b.randn(1, 3, 5, 7))
    b.output(b.node("Resize", [x, "", b.init("sc", np.array([1, 1, 2, 2], np.float32))], mode="nearest"))
    y = b.input("y", b.randn(2, 4, 6, 5))
    b.output(b.node("Resize", [y, "", b.init("sc2", np.array([1, 1, 2, 2], np.float32))], mode="linear",
                    coordinate_transformation_mode="half_pixel"))
    z = b.input("z", b.randn(1, 2, 9, 9))
    b.output(b.node("Resize", [z, "", "", b.const_i64("sz", [1, 2, 4, 5])], mode="linear",
                    coordinate_transformation_mode="align_corners"))


def b_resize_nearest(b):
    # integer nearest upsampling takes drt_upsample_nearest where the exact map is y / f (the
    # modes below marked fast), the general kernel otherwise; odd last axes (V = 1), x4 and x3
    # factors, 5-D, a channel-scaled axis
    sc = lambda name, v: b.init(name, np.array(v, np.float32))
    x = b.input("x", b.randn(2, 3, 5, 8))
    for i, (ct, nm, f) in enumerate([("half_pixel", "round_prefer_floor", 2),      # fast (diffusers)
                                     ("asymmetric", "floor", 3),                   # fast (torch nearest)
                                     ("half_pixel_symmetric", "round_prefer_ceil", 4),  # fast
                                     ("pytorch_half_pixel", "round_prefer_floor", 2),   # fast
                                     ("asymmetric", "round_prefer_floor", 2),      # fast (f = 2 only)
                                     ("asymmetric", "round_prefer_floor", 3),      # general: ties round up
                                     ("half_pixel", "floor", 2),                   # general
                                     ("align_corners", "round_prefer_floor", 2)]):  # general
        b.output(b.node("Resize", [x, "", sc("s%d" % i, [1, 1, f, f])], mode="nearest",
                        coordinate_transformation_mode=ct, nearest_mode=nm))
    y = b.input("y", b.randn(1, 2, 3, 5, 7))
    b.output(b.node("Resize", [y, "", sc("s5d", [1, 2, 2, 2, 3])], mode="nearest"))
    z = b.input("z", b.randn(1, 4, 3, 3))
    b.output(b.node("Resize", [z, "", "", b.const_i64("szz", [1, 4, 6, 9])], mode="nearest",
                    coordinate_transformation_mode="asymmetric", nearest_mode="floor"))
    # tf_crop_and_resize at scale 1 with a cropping / extrapolating roi is no copy (general kernel)
    w = b.input("w", b.randn(1, 1, 4, 6))
    for i, roi in enumerate([[0, 0, 0.25, 0.25, 1, 1, 0.75, 0.75], [0, 0, -0.5, -0.5, 1, 1, 1.5, 1.5]]):
        b.output(b.node("Resize", [w, sc("roi%d" % i, roi), sc("s1%d" % i, [1, 1, 1, 1])], mode="nearest",
                        coordinate_transformation_mode="tf_crop_and_resize", extrapolation_value=-3.0))


def b_expand(b):
    b.output(b.node("Expand", [b.input("x", b.randn(3, 1, 5)), b.const_i64("s", [2, 3, 4, 5])]))


def b_gather(b):
    x = b.input("x", b.randn(11, 6, 5))
    b.output(b.node("Gather", [x, b.const_i64("i", [[3, 0], [10, -1]])], axis=0))
    b.output(b.node("Gather", [x, b.const_i64("j", [5, 1, 1])], axis=1))
    e = b.input("emb", b.randn(50, 16))
    b.output(b.node("Gather", [e, b.input("ids", np.array([[1, 49, 7], [0, 3, 3]], np.int64))], axis=0))


def b_reshape_family(b):
    x = b.input("x", b.randn(2, 3, 4, 5))
    b.output(b.node("Reshape", [b.node("Transpose", [x], perm=[0, 2, 1, 3]), b.const_i64("s", [2, 4, 15])]))
    b.output(b.node("Unsqueeze", [b.node("Squeeze", [b.input("y", b.randn(3, 1, 7)), b.const_i64("a", [1])]),
                                  b.const_i64("b", [0, 3])]))
    b.output(b.node("Flatten", [b.input("z", b.randn(2, 3, 4, 5))], axis=2))


def b_tile_d2s(b):
    b.output(b.node("Tile", [b.input("x", b.randn(2, 3, 5)), b.const_i64("r", [2, 1, 3])]))
    b.output(b.node("DepthToSpace", [b.input("y", b.randn(1, 8, 3, 5))], blocksize=2, mode="DCR"))


def b_grid_sample(b):
    x = b.input("x", b.randn(2, 3, 9, 11))
    g = b.input("g", b.uniform(-1.2, 1.2, 2, 5, 7, 2))
    b.output(b.node("GridSample", [x, g], mode="linear", padding_mode="zeros"))
    b.output(b.node("GridSample", [x, b.input("g2", b.uniform(-1.3, 1.3, 2, 4, 6, 2))], mode="cubic",
                    padding_mode="reflection", align_corners=1))
    b.output(b.node("GridSample", [x, b.input("g3", b.uniform(-1.1, 1.1, 2, 6, 3, 2))], mode="nearest",
                    padding_mode="border"))


def b_grid_sample_affine(b):
    x = b.input("x", b.randn(2, 3, 9, 11))
    th = b.init("th", np.array([[[0.9, 0.1, 0.05], [-0.1, 1.1, 0.0]], [[1.0, 0.0, -0.1], [0.2, 0.8, 0.1]]], np.float32))
    g = b.node("AffineGrid", [th, b.const_i64("size", [2, 3, 7, 8])], align_corners=0)
    b.output(b.node("GridSample", [x, b.node("Mul", [g, b.init("one", np.array(1.0, np.float32))])], mode="linear"))


MOVEMENT = [
    Case("transpose", "Transpose 2D/4D/5D", b_transpose),
    Case("concat", "Concat axis 1 / -1", b_concat),
    Case("split", "Split [2,5,6] axis 2", b_split),
    Case("slice", "Slice steps 3, negative step", b_slice),
    Case("pad", "Pad constant / reflect", b_pad),
    Case("resize", "Resize nearest x2, linear half_pixel, align_corners sizes", b_resize),
    Case("resize_nearest_int", "Resize nearest by integer factors, every coordinate/nearest mode",
         b_resize_nearest, opset=19),
    Case("expand", "Expand [3,1,5]->[2,3,4,5]", b_expand),
    Case("gather", "Gather axis 0/1, negative and runtime indices", b_gather),
    Case("reshape_family", "Transpose+Reshape, Squeeze/Unsqueeze, Flatten", b_reshape_family),
    Case("tile_d2s", "Tile, DepthToSpace", b_tile_d2s),
    # the grids are 16-bit graph inputs there: rounding moves the sample points (nearest flips
    # pixels); a grid computed in the graph keeps float32 storage (codegen.c reads_any_storage)
    Case("grid_sample", "GridSample linear/zeros, cubic/reflection/align, nearest/border [2,3,9,11]", b_grid_sample,
         opset=22, xfail={"fp16": "grid coordinates rounded to fp16 as an input",
                          "bf16": "grid coordinates rounded to bf16 as an input"}),
    # bf16: theta is a weight, stored in bf16; its rounding (2^-9) moves the sample points by
    # up to ~0.02 px here, about 1e-2 of a unit-variance image
    Case("grid_sample_affine", "AffineGrid -> GridSample bilinear (grid computed on the device)",
         b_grid_sample_affine, opset=22, tol={"bf16": 2e-2}),
]


# ---- linalg ------------------------------------------------------------------------------------------
def b_matmul(b):
    b.output(b.node("MatMul", [b.input("a", b.randn(37, 65)), b.input("b", b.randn(65, 29))]))
    b.output(b.node("MatMul", [b.input("c", b.randn(3, 17, 33)), b.input("d", b.randn(3, 33, 19))]))
    b.output(b.node("MatMul", [b.input("e", b.randn(2, 3, 17, 33)), b.init("w", b.randn(33, 19, scale=0.2))]))
    b.output(b.node("MatMul", [b.input("f", b.randn(2, 1, 9, 16)), b.input("g", b.randn(3, 16, 7))]))
    b.output(b.node("MatMul", [b.input("h", b.randn(1, 77, 96)), b.init("w2", b.randn(96, 160, scale=0.1))]))


def b_gemm(b):
    b.output(b.node("Gemm", [b.input("a", b.randn(31, 47)), b.init("w", b.randn(29, 47, scale=0.2)),
                             b.init("c", b.randn(29))], transB=1, alpha=0.7, beta=1.3))
    b.output(b.node("Gemm", [b.input("x", b.randn(47, 5)), b.input("y", b.randn(47, 23))], transA=1))
    b.output(b.node("Gemm", [b.input("p", b.randn(8, 16)), b.init("q", b.randn(16, 12)),
                             b.init("r", b.randn(8, 12))], beta=0.5))


def b_linear_act(b):
    x = b.input("x", b.randn(2, 19, 48))
    y = b.node("Add", [b.node("MatMul", [x, b.init("w", b.randn(48, 72, scale=0.2))]), b.init("bias", b.randn(72))])
    b.output(b.node("Relu", [y]))
    z = b.node("Add", [b.node("MatMul", [x, b.init("w2", b.randn(48, 40, scale=0.2))]), b.init("b2", b.randn(40))])
    t = b.node("Add", [b.node("Erf", [b.node("Div", [z, b.init("s2", np.array(1.4142135, np.float32))])]),
                       b.init("one", np.array(1.0, np.float32))])
    b.output(b.node("Mul", [b.node("Mul", [z, t]), b.init("h", np.array(0.5, np.float32))]))
    r = b.input("res", b.randn(2, 19, 40))
    b.output(b.node("Add", [r, b.node("MatMul", [x, b.init("w3", b.randn(48, 40, scale=0.2))])]))


def conv_case(xs, ws, bias=True, **attrs):
    def build(b):
        x = b.input("x", b.randn(*xs))
        ins = [x, b.init("w", b.randn(*ws, scale=1.0 / np.sqrt(np.prod(ws[1:]))))]
        if bias:
            ins.append(b.init("b", b.randn(ws[0])))
        b.output(b.node("Conv", ins, **attrs))
    return build


def b_conv_silu(b):
    x = b.input("x", b.randn(1, 16, 11, 9))
    y = b.node("Conv", [x, b.init("w", b.randn(32, 16, 3, 3, scale=0.1)), b.init("b", b.randn(32))], pads=[1, 1, 1, 1])
    b.output(b.node("Mul", [y, b.node("Sigmoid", [y])]))
    r = b.input("r", b.randn(1, 32, 11, 9))
    b.output(b.node("Add", [r, b.node("Conv", [x, b.init("w2", b.randn(32, 16, 1, 1, scale=0.2))])]))


def b_resblock(b):
    # fp16/bf16 keep the residual stream in float32 storage (codegen/codegen.c): the first conv
    # writes float32 (bias added by an epilogue kernel), GroupNorm reads it, the second conv's
    # residual epilogue reads it, and the stride-2 conv reads the float32 sum through im2col
    x = b.input("x", b.randn(1, 16, 12, 10))
    h = b.node("Conv", [x, b.init("w0", b.randn(32, 16, 3, 3, scale=0.08)), b.init("b0", b.randn(32))], pads=[1, 1, 1, 1])
    n = b.node("GroupNormalization", [h, b.init("g", b.randn(32)), b.init("be", b.randn(32))], num_groups=8)
    n = b.node("Mul", [n, b.node("Sigmoid", [n])])
    c = b.node("Conv", [n, b.init("w1", b.randn(32, 32, 3, 3, scale=0.06)), b.init("b1", b.randn(32))],
               pads=[1, 1, 1, 1])
    r = b.node("Add", [h, c])
    b.output(b.node("Conv", [r, b.init("w2", b.randn(24, 32, 3, 3, scale=0.06)), b.init("b2", b.randn(24))],
                    strides=[2, 2], pads=[1, 1, 1, 1]))
    b.output(b.node("Exp", [b.node("Mul", [r, b.init("s", np.full((1,), 0.1, np.float32))])]))


def b_convtranspose(b):
    x = b.input("x", b.randn(1, 8, 7, 6))
    b.output(b.node("ConvTranspose", [x, b.init("w", b.randn(8, 4, 4, 4, scale=0.2)), b.init("b", b.randn(4))],
                    strides=[2, 2], pads=[1, 1, 1, 1]))


def b_einsum(b):
    b.output(b.node("Einsum", [b.input("a", b.randn(3, 9, 17)), b.input("b", b.randn(3, 17, 11))],
                    equation="bij,bjk->bik"))
    b.output(b.node("Einsum", [b.input("q", b.randn(2, 3, 13, 8)), b.input("k", b.randn(2, 3, 7, 8))],
                    equation="bhqd,bhkd->bhqk"))
    b.output(b.node("Einsum", [b.input("x", b.randn(5, 24)), b.init("w", b.randn(24, 10))], equation="ij,jk->ik"))


LINALG = [
    Case("matmul", "MatMul 2D, batched, bcast weight, bcast batch, [1,77,96]x[96,160]", b_matmul),
    Case("gemm", "Gemm transB+bias alpha/beta, transA, C matrix", b_gemm),
    Case("linear_act", "MatMul+bias+Relu / +GELU, residual add (fused epilogues)", b_linear_act),
    Case("conv1x1", "Conv 1x1 [1,32,9,11]->48", conv_case((1, 32, 9, 11), (48, 32, 1, 1))),
    Case("conv3x3", "Conv 3x3 pad 1 [2,8,13,15]->16", conv_case((2, 8, 13, 15), (16, 8, 3, 3), pads=[1, 1, 1, 1])),
    Case("conv_stride2", "Conv 3x3 stride 2 [1,16,17,17]->24",
         conv_case((1, 16, 17, 17), (24, 16, 3, 3), strides=[2, 2], pads=[1, 1, 1, 1])),
    Case("conv_grouped", "Conv 3x3 groups 4 [1,16,9,9]->32",
         conv_case((1, 16, 9, 9), (32, 4, 3, 3), group=4, pads=[1, 1, 1, 1])),
    Case("conv_depthwise", "Conv 3x3 depthwise [1,24,10,10]",
         conv_case((1, 24, 10, 10), (24, 1, 3, 3), group=24, pads=[1, 1, 1, 1])),
    Case("conv_dilated", "Conv 3x3 dilation 2, no bias [1,8,12,12]",
         conv_case((1, 8, 12, 12), (8, 8, 3, 3), bias=False, dilations=[2, 2], pads=[2, 2, 2, 2])),
    Case("conv_patch", "Conv 2x2 stride 2 (patch embed) [2,4,16,16]->64",
         conv_case((2, 4, 16, 16), (64, 4, 2, 2), strides=[2, 2])),
    Case("conv1d", "Conv 1D k3 [1,8,33]->16", conv_case((1, 8, 33), (16, 8, 3), pads=[1, 1])),
    # implicit-GEMM variants (kernels/conv.cuh): several M and P tiles with tails, rows of 8
    # output positions, a K tail; the 128x128 tile needs >= 96 blocks, > 64 output channels and
    # OW % 8 == 0; 3-D; asymmetric pads
    Case("conv_igemm_tiles", "Conv 3x3 [2,40,16,24]->136, M/P/K tails",
         conv_case((2, 40, 16, 24), (136, 40, 3, 3), pads=[1, 1, 1, 1])),
    Case("conv_igemm_big", "Conv 3x3 [2,8,48,128]->96 (128x128 tiles)",
         conv_case((2, 8, 48, 128), (96, 8, 3, 3), pads=[1, 1, 1, 1])),
    Case("conv3d", "Conv 3D 3x3x3 [1,8,5,9,16]->16, pads 1/0",
         conv_case((1, 8, 5, 9, 16), (16, 8, 3, 3, 3), pads=[1, 1, 0, 1, 1, 1])),
    Case("conv_silu_res", "Conv+bias+SiLU, Conv 1x1 + residual (fused)", b_conv_silu),
    Case("resblock_f32_stream", "Conv, GroupNorm+SiLU, Conv + residual, stride-2 Conv (float32 residual "
         "storage under fp16/bf16)", b_resblock),
    Case("convtranspose", "ConvTranspose 4x4 stride 2", b_convtranspose),
    Case("einsum", "Einsum bij,bjk / bhqd,bhkd / ij,jk", b_einsum),
]


# ---- norm / softmax / reductions ---------------------------------------------------------------------
def b_layernorm(b):
    x = b.input("x", b.randn(2, 37, 96, scale=2.0) + 1.0)
    b.output(b.node("LayerNormalization", [x, b.init("g", b.randn(96)), b.init("b", b.randn(96))], axis=-1,
                    epsilon=1e-5))
    y = b.input("y", b.randn(3, 5, 129))
    b.output(b.node("LayerNormalization", [y, b.init("g2", b.randn(129))], axis=-1, epsilon=1e-6))
    z = b.input("z", b.randn(2, 3, 4, 7))
    b.output(b.node("LayerNormalization", [z, b.init("g3", b.randn(4, 7))], axis=2))


def b_groupnorm(b):
    x = b.input("x", b.randn(2, 32, 9, 11, scale=3.0) + 0.5)
    b.output(b.node("GroupNormalization", [x, b.init("g", b.randn(32)), b.init("b", b.randn(32))], num_groups=4,
                    epsilon=1e-5))
    y = b.input("y", b.randn(1, 12, 5, 5))
    b.output(b.node("GroupNormalization", [y, b.init("g2", b.randn(12)), b.init("b2", b.randn(12))], num_groups=12))


def b_groupnorm_silu(b):
    x = b.input("x", b.randn(1, 32, 8, 8))
    y = b.node("GroupNormalization", [x, b.init("g", b.randn(32)), b.init("b", b.randn(32))], num_groups=8)
    b.output(b.node("Mul", [y, b.node("Sigmoid", [y])]))


def b_instancenorm(b):
    x = b.input("x", b.randn(2, 16, 7, 9))
    b.output(b.node("InstanceNormalization", [x, b.init("g", b.randn(16)), b.init("b", b.randn(16))]))


def b_softmax(b):
    b.output(b.node("Softmax", [b.input("x", b.randn(2, 3, 17, 129, scale=3.0))], axis=-1))
    b.output(b.node("Softmax", [b.input("y", b.randn(4, 37, 5))], axis=1))
    b.output(b.node("Softmax", [b.input("z", b.randn(3, 1000, scale=2.0))], axis=-1))


def b_reduce(b):
    x = b.input("x", b.randn(3, 7, 65))
    b.output(b.node("ReduceMean", [x, b.const_i64("a", [-1])], keepdims=1))
    b.output(b.node("ReduceSum", [x, b.const_i64("b", [1])], keepdims=0))
    b.output(b.node("ReduceMax", [b.input("y", b.randn(2, 4, 5, 6)), b.const_i64("c", [2, 3])], keepdims=1))
    b.output(b.node("ReduceMean", [b.input("z", b.randn(2, 16, 9, 9)), b.const_i64("d", [2, 3])], keepdims=1))


def b_rmsnorm(b):
    x = b.input("x", b.randn(2, 37, 96))
    ms = b.node("ReduceMean", [b.node("Pow", [x, b.init("two", np.array(2.0, np.float32))]), b.const_i64("a", [-1])],
                keepdims=1)
    r = b.node("Sqrt", [b.node("Add", [ms, b.init("eps", np.array(1e-6, np.float32))])])
    b.output(b.node("Mul", [b.node("Div", [x, r]), b.init("w", b.randn(96))]))


def b_layernorm_decomposed(b):
    x = b.input("x", b.randn(1, 19, 64) + 2.0)
    mu = b.node("ReduceMean", [x, b.const_i64("a", [-1])], keepdims=1)
    d = b.node("Sub", [x, mu])
    var = b.node("ReduceMean", [b.node("Pow", [d, b.init("two", np.array(2.0, np.float32))]),
                                b.const_i64("a2", [-1])], keepdims=1)
    y = b.node("Div", [d, b.node("Sqrt", [b.node("Add", [var, b.init("eps", np.array(1e-5, np.float32))])])])
    b.output(b.node("Add", [b.node("Mul", [y, b.init("g", b.randn(64))]), b.init("b", b.randn(64))]))


def b_adaln(b):
    x = b.input("x", b.randn(2, 16, 64))
    sh, sc = b.input("shift", b.randn(2, 1, 64)), b.input("scale", b.randn(2, 1, 64, scale=0.1))
    y = b.node("LayerNormalization", [x, b.init("g", np.ones(64, np.float32))], axis=-1, epsilon=1e-6)
    b.output(b.node("Add", [b.node("Mul", [y, b.node("Add", [sc, b.init("one", np.array(1.0, np.float32))])]), sh]))


NORM = [
    Case("layernorm", "LayerNormalization axis -1 (+bias, no bias), axis 2", b_layernorm, opset=17),
    Case("groupnorm", "GroupNormalization 4 groups, 12 groups", b_groupnorm),
    Case("groupnorm_silu", "GroupNormalization + SiLU (fused)", b_groupnorm_silu),
    Case("instancenorm", "InstanceNormalization", b_instancenorm),
    Case("softmax", "Softmax axis -1 / 1, long rows", b_softmax),
    Case("reduce", "ReduceMean/Sum/Max keepdims, multi-axis", b_reduce),
    Case("rmsnorm", "RMSNorm pattern (fused drt.Norm)", b_rmsnorm),
    Case("layernorm_decomposed", "ReduceMean/Sub/Pow/Sqrt/Div LayerNorm (fused)", b_layernorm_decomposed),
    Case("adaln_modulate", "LayerNorm * (1+scale) + shift (DiT adaLN)", b_adaln),
]


# ---- attention ---------------------------------------------------------------------------------------
def attn_bshd(B, S, T, H, D, mask=False):
    def build(b):
        q = b.input("q", b.randn(B, S, H * D))
        k = b.input("k", b.randn(B, T, H * D))
        v = b.input("v", b.randn(B, T, H * D))
        qh = b.node("Transpose", [b.node("Reshape", [q, b.const_i64("sq", [B, S, H, D])])], perm=[0, 2, 1, 3])
        kh = b.node("Transpose", [b.node("Reshape", [k, b.const_i64("sk", [B, T, H, D])])], perm=[0, 2, 3, 1])
        vh = b.node("Transpose", [b.node("Reshape", [v, b.const_i64("sv", [B, T, H, D])])], perm=[0, 2, 1, 3])
        s = b.node("Mul", [b.node("MatMul", [qh, kh]), b.init("scale", np.array(1.0 / np.sqrt(D), np.float32))])
        if mask:
            m = np.where(b.rng.random((B, 1, S, T)) < 0.2, -1e4, 0.0).astype(np.float32)
            s = b.node("Add", [s, b.input("mask", m)])
        p = b.node("Softmax", [s], axis=-1)
        o = b.node("Transpose", [b.node("MatMul", [p, vh])], perm=[0, 2, 1, 3])
        b.output(b.node("Reshape", [o, b.const_i64("so", [B, S, H * D])]))
    return build


def b_attn_4d(b):
    q, k, v = b.input("q", b.randn(1, 3, 64, 40)), b.input("k", b.randn(1, 3, 50, 40)), b.input("v", b.randn(1, 3, 50, 40))
    s = b.node("Div", [b.node("MatMul", [q, b.node("Transpose", [k], perm=[0, 1, 3, 2])]),
                       b.init("d", np.array(np.sqrt(40.0), np.float32))])
    b.output(b.node("MatMul", [b.node("Softmax", [s], axis=-1), v]))


def b_attn_channel_major(b):
    q, k, v = b.input("q", b.randn(2, 32, 49)), b.input("k", b.randn(2, 32, 49)), b.input("v", b.randn(2, 32, 49))
    s = b.node("Mul", [b.node("MatMul", [b.node("Transpose", [q], perm=[0, 2, 1]), k]),
                       b.init("c", np.array(1.0 / np.sqrt(32.0), np.float32))])
    p = b.node("Softmax", [s], axis=-1)
    b.output(b.node("MatMul", [v, b.node("Transpose", [p], perm=[0, 2, 1])]))


def b_attn_op23(b):
    q, k, v = b.input("q", b.randn(2, 4, 33, 16)), b.input("k", b.randn(2, 4, 21, 16)), b.input("v", b.randn(2, 4, 21, 16))
    b.output(b.node("Attention", [q, k, v]))
    q3, k3, v3 = b.input("q3", b.randn(1, 17, 64)), b.input("k3", b.randn(1, 17, 32)), b.input("v3", b.randn(1, 17, 32))
    b.output(b.node("Attention", [q3, k3, v3], q_num_heads=4, kv_num_heads=2))
    b.output(b.node("Attention", [b.input("qc", b.randn(1, 2, 19, 8)), b.input("kc", b.randn(1, 2, 19, 8)),
                                  b.input("vc", b.randn(1, 2, 19, 8))], is_causal=1))


def b_attn_spatial(C, Hs, Ws, B=1):
    """UNet / VAE AttnBlock: channel-major [B, C, H, W] single-head spatial attention (head size
    C > 256: the unfused device lowering, GEMM + softmax + GEMM)."""
    def build(b):
        L = Hs * Ws
        flat = b.const_i64("flat", [B, C, L])
        q, k, v = (b.node("Reshape", [b.input(n, b.randn(B, C, Hs, Ws)), flat]) for n in ("q", "k", "v"))
        s = b.node("Mul", [b.node("MatMul", [b.node("Transpose", [q], perm=[0, 2, 1]), k]),
                           b.init("c", np.array(1.0 / np.sqrt(C), np.float32))])
        p = b.node("Softmax", [s], axis=-1)
        o = b.node("MatMul", [v, b.node("Transpose", [p], perm=[0, 2, 1])])
        b.output(b.node("Reshape", [o, b.const_i64("back", [B, C, Hs, Ws])]))
    return build


def b_attn_bsd_d512(b):
    """single head [B, S, D] (VAE decoder after the permute), head size 512"""
    q, k, v = b.input("q", b.randn(2, 45, 512)), b.input("k", b.randn(2, 45, 512)), b.input("v", b.randn(2, 45, 512))
    s = b.node("Mul", [b.node("MatMul", [q, b.node("Transpose", [k], perm=[0, 2, 1])]),
                       b.init("c", np.array(1.0 / np.sqrt(512.0), np.float32))])
    b.output(b.node("MatMul", [b.node("Softmax", [s], axis=-1), v]))


def b_attn_op23_big(b):
    """ONNX Attention (opset 23) with head size 512: 4-D GQA causal, and a bool mask"""
    q, k, v = b.input("q", b.randn(1, 4, 20, 512)), b.input("k", b.randn(1, 2, 26, 512)), b.input("v", b.randn(1, 2, 26, 512))
    b.output(b.node("Attention", [q, k, v], is_causal=1))
    m = b.rng.random((1, 3, 17, 23)) < 0.7
    m[0, 1, 5, :] = False  # a fully masked row
    b.output(b.node("Attention", [b.input("q2", b.randn(1, 3, 17, 320)), b.input("k2", b.randn(1, 3, 23, 320)),
                                  b.input("v2", b.randn(1, 3, 23, 320)), b.input("m2", m)]))


ATTENTION = [
    Case("self_s37_h4_d16", "SDPA pattern B2 S37 H4 D16 (drt.Attention)", attn_bshd(2, 37, 37, 4, 16)),
    Case("cross_s19_t77_h2_d32", "cross-attention S19 T77 H2 D32", attn_bshd(1, 19, 77, 2, 32)),
    Case("self_s128_h2_d64", "S128 H2 D64", attn_bshd(1, 128, 128, 2, 64)),
    Case("self_mask", "additive mask [B,1,S,T]", attn_bshd(2, 24, 24, 2, 8, mask=True)),
    Case("sdpa_4d_div", "4-D Q,K,V [1,3,64|50,40], Div by sqrt(d)", b_attn_4d),
    Case("channel_major", "UNet/VAE channel-major bmm attention", b_attn_channel_major),
    Case("onnx_attention", "ONNX Attention (opset 23): 4-D, 3-D GQA, causal", b_attn_op23, opset=23),
    # head sizes > 256: the unfused device lowering (cuBLASLt S = Q K^T, softmax kernel, P V)
    Case("spatial_d320", "UNet AttnBlock channel-major [2,320,7,9] (head 320)", b_attn_spatial(320, 7, 9, B=2)),
    Case("spatial_d640", "UNet AttnBlock channel-major [1,640,6,6] (head 640)", b_attn_spatial(640, 6, 6)),
    Case("bsd_d512", "VAE single-head [2,45,512] bmm attention (head 512)", b_attn_bsd_d512),
    Case("mh_d320_mask", "B2 S24 T30 H2 D320 [B,S,H*D] + additive mask", attn_bshd(2, 24, 30, 2, 320, mask=True)),
    Case("onnx_attention_d512", "ONNX Attention head 512: GQA causal, bool mask with a dead row", b_attn_op23_big,
         opset=23),
]

CASES = {
    "elementwise": ELEMENTWISE,
    "movement": MOVEMENT,
    "linalg": LINALG,
    "norm": NORM,
    "attention": ATTENTION,
}
