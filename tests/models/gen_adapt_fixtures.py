#!/usr/bin/env python3
"""Generate the fixtures of the adaptable-plan tests (refit, LoRA, shape buckets) under
tests/models/adapt/, from the networks of gen_fixtures.py.

  dit_a.safetensors        state_dict of the dit_student fixture's model (the weights inside
                           fixtures/dit_student_op17/model.onnx), for --weights-map
  dit_b.safetensors        a second checkpoint of the same architecture (every parameter moved,
                           as a fine-tune would)
  dit_b_op17.onnx          that checkpoint exported exactly like the fixture (torchscript,
                           opset 17, dynamic batch): "the second checkpoint compiled from scratch"
  unet_a.safetensors       state_dict of the unet fixture's model
  dit_lora1_kohya.safetensors   LoRA 1 for the DiT in kohya layout (lora_unet_..., lora_down /
                           lora_up / alpha), plus one text-encoder key (must be reported unknown)
  dit_lora1_peft.safetensors    the same LoRA 1 in diffusers/PEFT layout (transformer....lora_A /
                           lora_B, alpha folded into lora_B), plus one key for a missing module
  dit_lora2_kohya.safetensors   a different LoRA 2 (for load A, B, A)
  dit_lora1_merged.safetensors  the parameters LoRA 1 touches, merged in torch at strength
                           LORA_STRENGTH: W + s * (alpha / r) * up @ down
  unet_lora1_kohya.safetensors  LoRA for the UNet: 3x3 and 1x1 convs (LoCon: lora_down
                           [r, in, kh, kw], lora_up [out, r, 1, 1]) and linears
  unet_lora1_diffusers.safetensors  the same in the old diffusers layout (..._lora.down.weight /
                           ..._lora.up.weight, with unet. prefix and .alpha)
  unet_lora1_merged.safetensors merged in torch at LORA_STRENGTH
  meta.json                strengths, ranks, targets

LoRA values are drawn large enough to move the output clearly (a test that cannot fail is no
test). Run: python3 tests/models/gen_adapt_fixtures.py
"""
import json
import os
import sys

import torch
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import gen_fixtures as gf  # noqa: E402

OUT = os.path.join(HERE, "adapt")
LORA_STRENGTH = 0.8
RANK = 4
ALPHA = 8.0

DIT_TARGETS = ["blocks.0.attn.qkv", "blocks.0.attn.proj", "blocks.1.attn.qkv", "blocks.1.mlp.0",
               "blocks.1.cross.q", "final"]
UNET_TARGETS = ["down0.conv1", "mid_attn.q", "mid_cross.q", "mid_cross.k", "up0.skip", "down0.temb"]


def state(model):
    return {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}


def make_lora(model, targets, seed, scale=0.15):
    """{module: (down, up)} with down [r, in(, kh, kw)] and up [out, r(, 1, 1)]."""
    g = torch.Generator().manual_seed(seed)
    mods = dict(model.named_modules())
    lora = {}
    for t in targets:
        w = mods[t].weight
        if w.dim() == 2:
            down = torch.randn(RANK, w.shape[1], generator=g) * scale
            up = torch.randn(w.shape[0], RANK, generator=g) * scale
        else:
            down = torch.randn(RANK, w.shape[1], w.shape[2], w.shape[3], generator=g) * scale
            up = torch.randn(w.shape[0], RANK, 1, 1, generator=g) * scale
        lora[t] = (down.contiguous(), up.contiguous())
    return lora


def merged_params(model, lora, strength, alpha):
    mods = dict(model.named_modules())
    out = {}
    for t, (down, up) in lora.items():
        w = mods[t].weight.detach()
        delta = (up.flatten(1) @ down.flatten(1)).reshape(w.shape)
        out[t + ".weight"] = (w + strength * (alpha / RANK) * delta).contiguous()
    return out


def kohya(lora, alpha, extra=None):
    d = {}
    for t, (down, up) in lora.items():
        k = "lora_unet_" + t.replace(".", "_")
        d[k + ".lora_down.weight"] = down
        d[k + ".lora_up.weight"] = up
        d[k + ".alpha"] = torch.tensor(alpha)
    d.update(extra or {})
    return d


def peft(lora, alpha, prefix, extra=None):
    """lora_A / lora_B without alpha: the alpha / r scale is folded into lora_B (scale 1)."""
    d = {}
    for t, (down, up) in lora.items():
        d["%s%s.lora_A.weight" % (prefix, t)] = down
        d["%s%s.lora_B.weight" % (prefix, t)] = (up * (alpha / RANK)).contiguous()
    d.update(extra or {})
    return d


def diffusers_old(lora, alpha, extra=None):
    d = {}
    for t, (down, up) in lora.items():
        d["unet.%s_lora.down.weight" % t] = down
        d["unet.%s_lora.up.weight" % t] = up
        d["unet.%s_lora.alpha" % t] = torch.tensor(alpha)
    d.update(extra or {})
    return d


def main():
    os.makedirs(OUT, exist_ok=True)
    specs = gf.NETWORKS
    meta = {"strength": LORA_STRENGTH, "rank": RANK, "alpha": ALPHA}

    # ---- DiT student: checkpoints A (the fixture) and B, B exported like the fixture ----
    spec = specs["dit_student"]
    a = gf.build_model(spec)
    save_file(state(a), os.path.join(OUT, "dit_a.safetensors"))
    b = gf.build_model(spec)
    g = torch.Generator().manual_seed(4242)
    with torch.no_grad():
        for _, p in b.named_parameters():
            p.add_(0.05 * p.abs().mean() * torch.randn(p.shape, generator=g))
    save_file(state(b), os.path.join(OUT, "dit_b.safetensors"))
    feeds = gf.make_inputs(spec, 2, spec["seed"] * 7 + 99)
    proto = gf.export_model(b, feeds, "torchscript", gf.TORCHSCRIPT_OPSET, True)
    with open(os.path.join(OUT, "dit_b_op17.onnx"), "wb") as f:
        f.write(proto.SerializeToString())

    lora1 = make_lora(a, DIT_TARGETS, 7)
    lora2 = make_lora(a, DIT_TARGETS[:4], 8)
    te = {"lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight": torch.zeros(RANK, 8),
          "lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_up.weight": torch.zeros(8, RANK)}
    save_file(kohya(lora1, ALPHA, te), os.path.join(OUT, "dit_lora1_kohya.safetensors"))
    bogus = {"transformer.blocks.7.attn.qkv.lora_A.weight": torch.zeros(RANK, 64),
             "transformer.blocks.7.attn.qkv.lora_B.weight": torch.zeros(192, RANK)}
    save_file(peft(lora1, ALPHA, "transformer.", bogus), os.path.join(OUT, "dit_lora1_peft.safetensors"))
    save_file(kohya(lora2, ALPHA), os.path.join(OUT, "dit_lora2_kohya.safetensors"))
    save_file(merged_params(a, lora1, LORA_STRENGTH, ALPHA), os.path.join(OUT, "dit_lora1_merged.safetensors"))
    meta["dit_targets"] = DIT_TARGETS

    # ---- UNet ----
    spec = specs["unet"]
    u = gf.build_model(spec)
    save_file(state(u), os.path.join(OUT, "unet_a.safetensors"))
    ulora = make_lora(u, UNET_TARGETS, 9)
    save_file(kohya(ulora, ALPHA), os.path.join(OUT, "unet_lora1_kohya.safetensors"))
    save_file(diffusers_old(ulora, ALPHA), os.path.join(OUT, "unet_lora1_diffusers.safetensors"))
    save_file(merged_params(u, ulora, LORA_STRENGTH, ALPHA), os.path.join(OUT, "unet_lora1_merged.safetensors"))
    meta["unet_targets"] = UNET_TARGETS

    with open(os.path.join(OUT, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")
    for n in os.listdir(OUT):
        os.chmod(os.path.join(OUT, n), 0o644)  # safetensors writes 0600
    total = sum(os.path.getsize(os.path.join(OUT, n)) for n in os.listdir(OUT))
    print("wrote %d files (%.2f MiB) to %s" % (len(os.listdir(OUT)), total / 2**20, OUT))


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    main()
