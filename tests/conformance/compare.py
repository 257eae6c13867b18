"""The output check of ONNX backend test cases (numpy only: tests/cuda_emu/run_onnx_nodes.py runs
exported cases on GPU machines that lack the onnx package)."""
from __future__ import annotations

import numpy as np


def compare(name: str, got: np.ndarray, ref: np.ndarray, rtol: float, atol: float) -> str | None:
    """None when `got` matches the reference: same shape and dtype, integers and bools exactly,
    floats within rtol/atol with NaN where the reference has NaN; else what differs."""
    if got.shape != ref.shape:
        return f"output {name!r}: shape {got.shape} != expected {ref.shape}"
    if got.dtype != ref.dtype:
        return f"output {name!r}: dtype {got.dtype} != expected {ref.dtype}"
    # ml_dtypes' types (numpy kind 'V'): bfloat16, float8/float4/float6 compare as float32
    # values, int4/uint4/int2/uint2 exactly as integers
    if ref.dtype.kind == "V":
        wide = np.int64 if ref.dtype.name in ("int4", "uint4", "int2", "uint2") else np.float32
        got, ref = got.astype(wide), ref.astype(wide)
    try:
        if ref.dtype.kind in "biu":
            np.testing.assert_array_equal(got, ref)
        else:
            np.testing.assert_allclose(got, ref, rtol=rtol, atol=atol, equal_nan=True)
    except AssertionError as e:
        msg = " ".join(str(e).split())
        return f"output {name!r}: values differ: {msg[:300]}"
    return None
