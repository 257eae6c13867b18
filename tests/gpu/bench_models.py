"""Benchmark models for tests/gpu/run.sh: the realistic DiT (PixArt-like: 28 blocks, hidden 1152,
16 heads, patch 2, adaLN-single, self-attention with qk RMSNorm, cross-attention to 120 T5
tokens of width 4096) at 1024 and 4096 image tokens, and the fixture UNet scaled up to SD-like
widths. The model definitions are the fixture classes of tests/models/gen_fixtures.py, so the
graphs distilrt compiles and the modules PyTorch runs are the same network.

Weights: the ONNX graphs are exported on the build machine with every initializer stored as
external data whose bytes are NOT shipped (2.4 GB); make_weights() regenerates them on the GPU
machine from a seeded generator keyed by initializer name (latency does not depend on the values;
the outputs are checked for NaN/Inf). PyTorch uses its own seeded init of the same shapes.
"""
import hashlib
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "models"))

TEXT_LEN, TEXT_DIM = 120, 4096

CONFIGS = {
    # name: (constructor kwargs, latent (c, h, w), context (tokens, dim))
    "dit_1024": ("dit", dict(in_ch=4, out_ch=4, hidden=1152, depth=28, heads=16, patch=2, text_dim=TEXT_DIM,
                             mlp_ratio=4.0, mode="single", sample_size=64, freq_dim=256),
                 (4, 64, 64), (TEXT_LEN, TEXT_DIM)),
    "dit_4096": ("dit", dict(in_ch=4, out_ch=4, hidden=1152, depth=28, heads=16, patch=2, text_dim=TEXT_DIM,
                             mlp_ratio=4.0, mode="single", sample_size=128, freq_dim=256),
                 (4, 128, 128), (TEXT_LEN, TEXT_DIM)),
    "unet_scaled": ("unet", dict(in_ch=4, ch=(320, 640), temb=1280, ctx_dim=1024, heads=8),
                    (4, 64, 64), (77, 1024)),
}


def build(name):
    import torch
    import gen_fixtures as gf
    kind, kw, _, _ = CONFIGS[name]
    torch.manual_seed(1234)
    m = gf.DiT(**kw) if kind == "dit" else gf.UNet(**kw)
    return m.eval()


def inputs(name, batch=1, seed=0):
    import numpy as np
    _, _, (c, h, w), (tl, td) = CONFIGS[name]
    rng = np.random.default_rng(seed)
    return {
        "sample": rng.standard_normal((batch, c, h, w)).astype(np.float32),
        "timestep": np.full((batch,), 500.0, dtype=np.float32),
        "encoder_hidden_states": rng.standard_normal((batch, tl, td)).astype(np.float32),
    }


def make_weights(model_dir):
    """Writes model_dir/<location> for every external initializer listed in manifest.json."""
    import numpy as np
    with open(os.path.join(model_dir, "manifest.json")) as f:
        man = json.load(f)
    path = os.path.join(model_dir, man["location"])
    if os.path.exists(path) and os.path.getsize(path) == man["size"]:
        return path
    tmp = path + ".tmp"
    with open(tmp, "wb") as out:
        for t in man["tensors"]:
            assert out.tell() <= t["offset"], t["name"]
            out.write(b"\0" * (t["offset"] - out.tell()))
            seed = int.from_bytes(hashlib.sha256(t["name"].encode()).digest()[:8], "little")
            rng = np.random.default_rng(seed)
            shape = t["shape"]
            n = int(np.prod(shape)) if shape else 1
            dt = np.dtype(t["dtype"])
            if dt.kind == "f":
                fan_in = int(np.prod(shape[1:])) if len(shape) >= 2 else 0
                if fan_in:
                    a = rng.standard_normal(n, dtype=np.float32) / np.float32(np.sqrt(fan_in))
                else:
                    a = np.float32(0.1) * rng.standard_normal(n, dtype=np.float32)
                out.write(a.astype(dt).tobytes())
            else:  # integer initializers must keep their exported values: they are stored inline
                raise ValueError("integer initializer %s stored externally" % t["name"])
        out.write(b"\0" * (man["size"] - out.tell()))
    os.replace(tmp, path)
    return path
