#!/usr/bin/env python3
"""Writes the safetensors test files for tests/unit/test_safetensors.c.

Valid files come from the `safetensors` package itself (the reference writer); malformed
ones are built byte by byte from a valid layout with one defect each. Values follow
formulas the C test recomputes:  element i of every numeric tensor is (i % 7) - 3 scaled
by 0.5 for floats (so they are exact in every float dtype), bool tensors are i % 3 == 0.

Usage: python3 tests/unit/data/safetensors/make_safetensors.py   (rewrites the files here)
"""
import json
import os
import struct

import torch
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))


def values(n, dtype):
    i = torch.arange(n)
    if dtype == torch.bool:
        return i % 3 == 0
    v = (i % 7) - 3
    if dtype.is_floating_point:
        return (v.to(torch.float64) * 0.5).to(dtype)
    return v.to(dtype) if dtype != torch.uint8 else (i % 7).to(dtype)


def write_valid():
    dtypes = [("f64", torch.float64, (2, 3)), ("f32", torch.float32, (2, 3, 4)), ("f16", torch.float16, (5,)),
              ("bf16", torch.bfloat16, (3, 3)), ("i64", torch.int64, (4,)), ("i32", torch.int32, (2, 2)),
              ("i16", torch.int16, (3,)), ("i8", torch.int8, (7,)), ("u8", torch.uint8, (1, 9)),
              ("bool", torch.bool, (5,))]
    tensors = {}
    for name, dt, shape in dtypes:
        n = 1
        for d in shape:
            n *= d
        tensors["t_" + name] = values(n, dt).reshape(shape).contiguous()
    tensors["scalar"] = torch.tensor(2.5, dtype=torch.float32)
    tensors["empty"] = torch.zeros((0, 3), dtype=torch.float32)
    save_file(tensors, os.path.join(HERE, "valid.safetensors"),
              metadata={"format": "pt", "note": "caf\u00e9 \U0001F600 \"quoted\""})


def raw(path, header, data, pad=True, header_bytes=None):
    hb = header_bytes if header_bytes is not None else json.dumps(header).encode()
    if pad:
        hb += b" " * ((8 - len(hb) % 8) % 8)
    with open(os.path.join(HERE, path), "wb") as f:
        f.write(struct.pack("<Q", len(hb)) + hb + data)


def write_malformed():
    f4 = struct.pack("<4f", 1, 2, 3, 4)
    ok = {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
          "b": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}}
    raw("bad_ok_control.safetensors", ok, f4)  # a valid control file built the same way
    with open(os.path.join(HERE, "bad_short.safetensors"), "wb") as f:
        f.write(b"\x10\x00\x00")
    with open(os.path.join(HERE, "bad_header_length.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", 1000) + b"{}")
    raw("bad_json.safetensors", None, f4, header_bytes=b'{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}')
    raw("bad_out_of_range.safetensors", {"a": {"dtype": "F32", "shape": [6], "data_offsets": [0, 24]}}, f4)
    raw("bad_overlap.safetensors", {"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 12]},
                                    "b": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}}, f4)
    raw("bad_hole.safetensors", {"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                                 "b": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}}, f4)
    raw("bad_size.safetensors", {"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 16]}}, f4)
    raw("bad_dtype.safetensors", {"a": {"dtype": "C64", "shape": [2], "data_offsets": [0, 16]}}, f4)
    raw("bad_duplicate.safetensors", None, f4,
        header_bytes=b'{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, '
                     b'"a": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}}')
    raw("bad_trailing.safetensors", None, f4, pad=False,
        header_bytes=b'{"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}xyz     ')
    raw("bad_float_dim.safetensors", {"a": {"dtype": "F32", "shape": [1.5], "data_offsets": [0, 16]}}, f4)
    raw("bad_negative_dim.safetensors", {"a": {"dtype": "F32", "shape": [-4], "data_offsets": [0, 16]}}, f4)
    raw("bad_missing_field.safetensors", {"a": {"dtype": "F32", "shape": [4]}}, f4)
    raw("bad_unknown_field.safetensors", {"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16],
                                                "stride": [1]}}, f4)
    raw("bad_metadata.safetensors", {"__metadata__": {"n": 3},
                                     "a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, f4)
    raw("bad_extra_data.safetensors", {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, f4)
    raw("bad_rank.safetensors", {"a": {"dtype": "F32", "shape": [1] * 9 + [4], "data_offsets": [0, 16]}}, f4)
    raw("bad_escape.safetensors", None, f4,
        header_bytes=b'{"a\\ud800": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}')


if __name__ == "__main__":
    write_valid()
    write_malformed()
    print("wrote", len([n for n in os.listdir(HERE) if n.endswith(".safetensors")]), "files to", HERE)
