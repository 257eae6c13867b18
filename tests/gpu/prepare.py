#!/usr/bin/env python3
"""Exports the benchmark models of tests/gpu/bench_models.py to ONNX on the build machine
(TorchScript exporter, opset 17, batch 1), keeping only the graph: every float initializer
larger than 1 KiB becomes external data in `weights.bin`, which is then deleted and described in
manifest.json (name, dtype, shape, offset) so tests/gpu/run.sh regenerates it on the GPU machine.

usage: tests/gpu/prepare.py OUT_DIR [--only NAME]
"""
import argparse
import shutil
import json
import os
import sys
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
os.environ.setdefault("OMP_NUM_THREADS", "2")

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import torch  # noqa: E402
from onnx import numpy_helper  # noqa: E402

import bench_models as bm  # noqa: E402


def export(name, out_dir):
    d = os.path.join(out_dir, name)
    os.makedirs(d, exist_ok=True)
    if os.path.exists(os.path.join(d, "manifest.json")):
        return d
    model = bm.build(name)
    feeds = bm.inputs(name)
    args = tuple(torch.from_numpy(v) for v in feeds.values())
    tmp = os.path.join(d, "export.tmp")
    os.makedirs(tmp, exist_ok=True)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        # > 2 GiB: the exporter must write a file with external data next to it
        torch.onnx.export(model, args, os.path.join(tmp, "model.onnx"), dynamo=False, opset_version=17,
                          input_names=list(feeds), output_names=["out"], do_constant_folding=True)
    del model
    proto = onnx.load(os.path.join(tmp, "model.onnx"), load_external_data=True)
    shutil.rmtree(tmp)
    # large Constant nodes (e.g. the folded position embedding) become initializers first
    keep = []
    for node in proto.graph.node:
        if node.op_type == "Constant" and len(node.attribute) == 1 and node.attribute[0].name == "value" \
                and node.attribute[0].t.data_type == onnx.TensorProto.FLOAT \
                and numpy_helper.to_array(node.attribute[0].t).nbytes > 1024:
            t = onnx.TensorProto()
            t.CopyFrom(node.attribute[0].t)
            t.name = node.output[0]
            proto.graph.initializer.append(t)
        else:
            keep.append(node)
    del proto.graph.node[:]
    proto.graph.node.extend(keep)
    tensors, offset = [], 0
    for init in proto.graph.initializer:
        if init.data_type not in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16):
            continue
        arr = numpy_helper.to_array(init)
        if arr.nbytes <= 1024:
            continue
        offset = (offset + 63) // 64 * 64
        tensors.append(dict(name=init.name, dtype=str(arr.dtype), shape=list(arr.shape), offset=offset))
        init.ClearField("raw_data")
        del init.float_data[:]
        del init.int32_data[:]
        init.data_location = onnx.TensorProto.EXTERNAL
        for k, v in (("location", "weights.bin"), ("offset", str(offset)), ("length", str(arr.nbytes))):
            e = init.external_data.add()
            e.key, e.value = k, v
        offset += arr.nbytes
    onnx.save_model(proto, os.path.join(d, "model.onnx"))
    with open(os.path.join(d, "manifest.json"), "w") as fo:
        json.dump(dict(location="weights.bin", size=offset, tensors=tensors), fo)
    for k, v in feeds.items():
        np.save(os.path.join(d, k + ".npy"), v)
    return d


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out_dir")
    ap.add_argument("--only", default=None)
    a = ap.parse_args()
    for name in bm.CONFIGS:
        if a.only and name != a.only:
            continue
        d = export(name, a.out_dir)
        print("%-12s %s (%.1f MB graph)" % (name, d, os.path.getsize(os.path.join(d, "model.onnx")) / 1e6))


if __name__ == "__main__":
    main()
