#!/usr/bin/env python3
"""Low-precision types (float8, float8e8m0, float4, float6, int4/uint4/int2/uint2) against ONNX's
reference implementation (onnx.reference, which uses ml_dtypes): fresh seeded random inputs
over a wide range plus the special values, every target of Cast with saturate on and off and
every E8M0 rounding mode, every code of every type cast back, QuantizeLinear/DequantizeLinear
per tensor, per axis and blocked (zero points, float8e8m0 scales as in the MX formats), packed
initializers of odd sizes, and the error when an op that does not take these types gets one.

Values travel as ONNX TensorProto files (`drt run --input NAME=FILE.pb --output-format pb`), so
the file packing is checked on the way. Outputs are compared code for code (NaN by position:
formats with several NaN codes may pick another).

Usage: test_lowp.py --drt PATH [--seed N] [-v]. Exit 0 when every check passes.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnx
from onnx import TensorProto as T
from onnx import helper, numpy_helper
from onnx.reference import ReferenceEvaluator

LOWP = [n for n in ("FLOAT8E4M3FN", "FLOAT8E4M3FNUZ", "FLOAT8E5M2", "FLOAT8E5M2FNUZ", "UINT4", "INT4",
                    "FLOAT4E2M1", "FLOAT8E8M0", "UINT2", "INT2", "FLOAT6E2M3", "FLOAT6E3M2")
        if hasattr(T, n)]
SUB_BYTE_BITS = {"UINT4": 4, "INT4": 4, "FLOAT4E2M1": 4, "UINT2": 2, "INT2": 2, "FLOAT6E2M3": 6,
                 "FLOAT6E3M2": 6}
FLOAT8 = ("FLOAT8E4M3FN", "FLOAT8E4M3FNUZ", "FLOAT8E5M2", "FLOAT8E5M2FNUZ")
OPSET = 25


class Checker:
    def __init__(self, drt: str, tmp: str, verbose: bool):
        self.drt, self.tmp, self.verbose = drt, tmp, verbose
        self.passed = 0
        self.failures: list[str] = []

    def run(self, model: onnx.ModelProto, feeds: dict[str, np.ndarray],
            specialize: bool = False) -> tuple[int, str, list[np.ndarray]]:
        path = os.path.join(self.tmp, "m.onnx")
        onnx.save(model, path)
        out_dir = os.path.join(self.tmp, "out")
        os.makedirs(out_dir, exist_ok=True)
        for f in os.listdir(out_dir):
            os.unlink(os.path.join(out_dir, f))
        cmd = [self.drt, "run", path] + ([] if specialize else ["--no-specialize"])
        for i, (name, arr) in enumerate(feeds.items()):
            p = os.path.join(self.tmp, f"in{i}.pb")
            with open(p, "wb") as f:
                f.write(numpy_helper.from_array(arr, name).SerializeToString())
            cmd += ["--input", f"{name}={p}"]
        cmd += ["--output-format", "pb", "--output-dir", out_dir]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        outs = []
        if r.returncode == 0:
            for vi in model.graph.output:
                t = T()
                with open(os.path.join(out_dir, vi.name + ".pb"), "rb") as f:
                    t.ParseFromString(f.read())
                outs.append(numpy_helper.to_array(t))
        return r.returncode, r.stderr, outs

    def check(self, label: str, model: onnx.ModelProto, feeds: dict[str, np.ndarray], specialize: bool = False,
              rtol: float = 0.0, want: list[np.ndarray] | None = None) -> None:
        """drt's outputs equal the reference's (rtol 0: code for code; else float outputs within
        rtol relative L2 error); `want` replaces onnx.reference where it lacks the op version."""
        if want is None:
            want = ReferenceEvaluator(model).run(None, feeds)
        rc, err, got = self.run(model, feeds, specialize)
        if rc != 0:
            self.failures.append(f"{label}: drt exit {rc}: {' '.join(err.split())[:300]}")
            return
        for g, w, vi in zip(got, want, model.graph.output):
            w = np.asarray(w)
            msg = compare_codes(g, w) if not rtol or w.dtype.kind != "f" else compare_l2(g, w, rtol)
            if msg:
                self.failures.append(f"{label}: output {vi.name}: {msg}")
                return
        self.passed += 1
        if self.verbose:
            print(f"ok   {label}")

    def report(self) -> int:
        """Prints the failures and the counts; the exit status (1 when anything failed)."""
        for f in self.failures:
            print("FAIL", f)
        print(f"{self.passed} passed, {len(self.failures)} failed")
        return 1 if self.failures else 0

    def expect_error(self, label: str, model: onnx.ModelProto, feeds: dict[str, np.ndarray],
                     needles: list[str], specialize: bool = False) -> None:
        rc, err, _ = self.run(model, feeds, specialize)
        flat = " ".join(err.split())
        if rc == 0 or not all(n in flat for n in needles):
            self.failures.append(f"{label}: expected a failure naming {needles}, got exit {rc}: {flat[:300]}")
        else:
            self.passed += 1


def compare_l2(got: np.ndarray, want: np.ndarray, rtol: float) -> str | None:
    if got.shape != want.shape or got.dtype != want.dtype:
        return f"got {got.dtype}{list(got.shape)}, expected {want.dtype}{list(want.shape)}"
    g, w = got.astype(np.float64), want.astype(np.float64)
    err = np.linalg.norm(g - w) / max(np.linalg.norm(w), 1e-30)
    return None if err <= rtol else f"relative L2 error {err:.3e} > {rtol:g}"


def compare_codes(got: np.ndarray, want: np.ndarray) -> str | None:
    if got.shape != want.shape:
        return f"shape {got.shape} != {want.shape}"
    if got.dtype != want.dtype:
        return f"dtype {got.dtype} != {want.dtype}"
    if want.dtype.kind == "V" and want.dtype.itemsize == 1:  # compare codes, NaN by position
        gf, wf = got.astype(np.float64), want.astype(np.float64)
        nan = np.isnan(wf)
        bad = (np.isnan(gf) != nan) | (~nan & (got.view(np.uint8) != want.view(np.uint8)))
        if want.dtype.name in ("int4", "uint4", "int2", "uint2"):
            bad = got.astype(np.int64) != want.astype(np.int64)
    elif want.dtype.kind == "f" or want.dtype.kind == "V":
        gf, wf = got.astype(np.float64), want.astype(np.float64)
        bad = ~((gf == wf) & (np.signbit(gf) == np.signbit(wf)) | (np.isnan(gf) & np.isnan(wf)))
    else:
        bad = got != want
    if bad.any():
        i = np.flatnonzero(bad)[:4]
        return (f"{int(bad.sum())}/{bad.size} elements differ, e.g. at {i.tolist()}: got "
                f"{got.ravel()[i].tolist()}, expected {want.ravel()[i].tolist()}")
    return None


def single_node(op: str, inputs: list[tuple[str, int, tuple]], out_type: int, out_shape: tuple,
                inits: list[onnx.TensorProto] = (), **attrs) -> onnx.ModelProto:
    names = [n for n, _, _ in inputs] + [t.name for t in inits]
    node = helper.make_node(op, names, ["y"], **attrs)
    g = helper.make_graph([node], op.lower(),
                          [helper.make_tensor_value_info(n, t, list(s)) for n, t, s in inputs],
                          [helper.make_tensor_value_info("y", out_type, list(out_shape))],
                          initializer=list(inits))
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)])


def wide_floats(rng: np.random.Generator, n: int) -> np.ndarray:
    """Magnitudes from 2^-40 to 2^40, exact midpoints of float8 neighbours, and the specials."""
    x = rng.standard_normal(n) * np.exp2(rng.uniform(-40, 40, n))
    k = n // 4  # ties: odd multiples of half a float8 E4M3 quantum, the hardest rounding case
    x[:k] = (2 * rng.integers(-600, 600, k) + 1) * np.exp2(rng.integers(-12, 4, k).astype(np.float64)) / 2
    x[k:2 * k] = rng.uniform(-8, 8, k)  # the range of float4/float6/int4
    specials = [np.nan, np.inf, -np.inf, 0.0, -0.0, 448.0, 464.0, 480.0, -57344.0, 61440.0, 240.0, 6.0,
                7.5, 28.0, 1e-45, -2.5, 2.5, 0.5, -0.5, 1.5, 2 ** -127, 2 ** 127 * 1.75]
    x[-len(specials):] = specials
    return x


def check_casts(c: Checker, rng: np.random.Generator) -> None:
    n = 2048
    for name in LOWP:
        to = getattr(T, name)
        modes = ["up", "down", "nearest"] if name == "FLOAT8E8M0" else [None]
        for src_dt, src_t in ((np.float32, T.FLOAT), (np.float16, T.FLOAT16), (np.float64, T.DOUBLE)):
            with np.errstate(over="ignore"):  # float16 turns the large values into inf, on purpose
                x = wide_floats(rng, n).astype(src_dt)
            for sat in (1, 0):
                for mode in modes:
                    attrs = {"to": to, "saturate": sat}
                    if mode:
                        attrs["round_mode"] = mode
                    m = single_node("Cast", [("x", src_t, (n,))], to, (n,), **attrs)
                    c.check(f"Cast {np.dtype(src_dt).name}->{name} saturate={sat}"
                            + (f" round_mode={mode}" if mode else ""), m, {"x": x})
        if name in ("INT4", "UINT4", "INT2", "UINT2"):
            xi = rng.integers(-300, 300, n).astype(np.int32)
            m = single_node("Cast", [("x", T.INT32, (n,))], to, (n,), to=to)
            c.check(f"Cast int32->{name}", m, {"x": xi})


def all_codes(name: str) -> np.ndarray:
    """Every code of a low-precision type, as the numpy (ml_dtypes) array onnx uses for it."""
    bits = SUB_BYTE_BITS.get(name, 8)
    np_t = onnx.helper.tensor_dtype_to_np_dtype(getattr(T, name))
    codes = np.arange(1 << bits, dtype=np.uint8)
    if name in ("INT4", "INT2"):
        return ((codes.astype(np.int16) ^ (1 << (bits - 1))) - (1 << (bits - 1))).astype(np.int8).astype(np_t)
    if name in ("UINT4", "UINT2"):
        return codes.astype(np_t)
    return codes.view(np_t)


def check_decodes(c: Checker) -> None:
    for name in LOWP:
        x = all_codes(name)
        n = x.size
        for to, label in ((T.FLOAT, "float32"), (T.FLOAT16, "float16"), (T.DOUBLE, "float64")):
            m = single_node("Cast", [("x", getattr(T, name), (n,))], to, (n,), to=to)
            c.check(f"Cast {name}->{label} (every code)", m, {"x": x})
        if name in ("INT4", "UINT4", "INT2", "UINT2"):
            m = single_node("Cast", [("x", getattr(T, name), (n,))], T.INT8, (n,), to=T.INT8)
            c.check(f"Cast {name}->int8 (every code)", m, {"x": x})
        # every code through a data-movement op and a packed initializer of odd size
        m = single_node("Transpose", [("x", getattr(T, name), (1, n))], getattr(T, name), (n, 1))
        c.check(f"Transpose {name}", m, {"x": x.reshape(1, n)})
        odd = x[: (n - 1) if n > 1 else n]
        init = numpy_helper.from_array(odd, "w")
        node = helper.make_node("Cast", ["w"], ["y"], to=T.FLOAT)
        g = helper.make_graph([node], "init", [], [helper.make_tensor_value_info("y", T.FLOAT, [odd.size])],
                              initializer=[init])
        c.check(f"packed initializer {name}[{odd.size}]", helper.make_model(
            g, opset_imports=[helper.make_opsetid("", OPSET)]), {})


def check_quantize(c: Checker, rng: np.random.Generator) -> None:
    x = (rng.standard_normal((4, 6, 8)) * 3).astype(np.float32)
    per_axis = (rng.uniform(0.05, 0.6, 6)).astype(np.float32)
    blocked = (rng.uniform(0.05, 0.6, (4, 6, 2))).astype(np.float32)
    for name in ("FLOAT8E4M3FN", "FLOAT8E5M2", "FLOAT8E4M3FNUZ", "FLOAT8E5M2FNUZ", "INT4", "UINT4", "INT2",
                 "UINT2", "FLOAT4E2M1", "FLOAT6E2M3", "FLOAT6E3M2"):
        if not hasattr(T, name):
            continue
        qt = getattr(T, name)
        zp_val = {"INT4": 1, "UINT4": 8, "INT2": -1, "UINT2": 2}.get(name, 0)
        np_t = onnx.helper.tensor_dtype_to_np_dtype(qt)
        for label, scale, attrs in (("per-tensor", np.array(0.25, np.float32), {}),
                                    ("per-axis", per_axis, {"axis": 1}),
                                    ("blocked", blocked, {"axis": 2, "block_size": 4})):
            zp = np.full(scale.shape, zp_val).astype(np_t)
            sats = (1, 0) if name in FLOAT8 else (1,)
            for sat in sats:
                extra = {"saturate": sat} if name in FLOAT8 else {}
                m = single_node("QuantizeLinear", [("x", T.FLOAT, x.shape), ("s", T.FLOAT, scale.shape),
                                                   ("z", qt, scale.shape)], qt, x.shape, **attrs, **extra)
                c.check(f"QuantizeLinear {name} {label}" + (f" saturate={sat}" if extra else ""), m,
                        {"x": x * 40 if sat == 0 else x, "s": scale, "z": zp})
            q = ReferenceEvaluator(single_node("QuantizeLinear", [("x", T.FLOAT, x.shape), ("s", T.FLOAT, scale.shape),
                                                                  ("z", qt, scale.shape)], qt, x.shape,
                                               **attrs)).run(None, {"x": x, "s": scale, "z": zp})[0]
            m = single_node("DequantizeLinear", [("q", qt, x.shape), ("s", T.FLOAT, scale.shape),
                                                 ("z", qt, scale.shape)], T.FLOAT, x.shape, **attrs)
            c.check(f"DequantizeLinear {name} {label}", m, {"q": q, "s": scale, "z": zp})
    # MX: float4 / float8 data with float8e8m0 block scales (output_dtype gives the float type)
    import ml_dtypes  # noqa: PLC0415
    e8 = np.exp2(rng.integers(-4, 4, (4, 6, 2)).astype(np.float32)).astype(ml_dtypes.float8_e8m0fnu)
    for name in ("FLOAT4E2M1", "FLOAT8E4M3FN"):
        qt = getattr(T, name)
        q = all_codes(name)[rng.integers(0, all_codes(name).size, x.size)].reshape(x.shape)
        if name in FLOAT8:
            q = np.where(np.isnan(q.astype(np.float32)), q.dtype.type(0), q).astype(q.dtype)
        m = single_node("DequantizeLinear", [("q", qt, x.shape), ("s", T.FLOAT8E8M0, e8.shape)], T.FLOAT, x.shape,
                        axis=2, block_size=4, output_dtype=T.FLOAT)
        c.check(f"DequantizeLinear {name} with float8e8m0 block scales", m, {"q": q, "s": e8})


def check_errors(c: Checker) -> None:
    n = 8
    m = single_node("Add", [("a", T.FLOAT8E4M3FN, (n,)), ("b", T.FLOAT8E4M3FN, (n,))], T.FLOAT8E4M3FN, (n,))
    z = np.zeros(n, np.float32).astype(onnx.helper.tensor_dtype_to_np_dtype(T.FLOAT8E4M3FN))
    c.expect_error("Add on float8e4m3fn is refused", m, {"a": z, "b": z}, ["float8e4m3fn", "Add"])
    m = single_node("Cast", [("x", T.FLOAT, (n,))], T.FLOAT8E8M0, (n,), to=T.FLOAT8E8M0, round_mode="sideways")
    c.expect_error("Cast round_mode=sideways is refused", m, {"x": np.ones(n, np.float32)}, ["round_mode", "sideways"])


def parse_args(doc: str) -> tuple[argparse.Namespace, np.random.Generator]:
    """--drt PATH [--seed N] [-v] of these differential tests, and the seeded generator (a fresh
    seed unless given, printed so a failure can be replayed)."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("--drt", required=True)
    ap.add_argument("--seed", type=int, default=None, help="random seed (default: fresh, printed)")
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args()
    seed = a.seed if a.seed is not None else int.from_bytes(os.urandom(4), "little")
    print(f"seed {seed}")
    return a, np.random.default_rng(seed)


def main() -> int:
    a, rng = parse_args(__doc__)
    with tempfile.TemporaryDirectory(prefix="drt_lowp_") as tmp:
        c = Checker(a.drt, tmp, a.verbose)
        check_casts(c, rng)
        check_decodes(c)
        check_quantize(c, rng)
        check_errors(c)
    return c.report()


if __name__ == "__main__":
    sys.exit(main())
