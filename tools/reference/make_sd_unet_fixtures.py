#!/usr/bin/env python3
"""Golden fixtures for the UNet with Stable Diffusion's blocks (diffusers `UNet2DConditionModel`,
as the SD x4 upscaler configures it).

Builds two tiny, seeded, randomly initialised UNets unlike each other, saves them with
`save_pretrained`, and stores seeded inputs plus float64 outputs and vector-Jacobian products
(the same IO layout as make_if_unet_fixtures.py, whose helpers this reuses):

  upscaler/   x4-upscaler-like: 7 input channels (4 latent + 3 noised RGB), 4 out, DownBlock2D +
              CrossAttnDownBlock2D x2 / CrossAttnUpBlock2D x2 + UpBlock2D, UNetMidBlock2DCrossAttn,
              linear projections, only_cross_attention [true, true, false], uneven
              layers_per_block [1, 2, 1], a different head count per level, a class-embedding table
              (num_class_embeds) indexed by per-sample noise levels; fp16 variant too.
  conv_proj/  the other branches: 1x1-convolution projections, only_cross_attention false, one
              head count for all levels, upcast_attention, flip_sin_to_cos false, freq_shift 1,
              CrossAttnDownBlock2D + DownBlock2D / UpBlock2D + CrossAttnUpBlock2D, no class labels.
  <name>_io.safetensors: sample [B,C,H,W], timestep [B] int64, encoder_hidden_states [B,L,cross],
              class_labels [B] int64 (upscaler only), cotangent; float64 out_sample, grad_sample,
              grad_encoder_hidden_states (and *_fp16w for the fp16-rounded weights, upscaler).

Run from the repository root:
    /work/venv/ref/bin/python tools/reference/make_sd_unet_fixtures.py
"""
import argparse
import copy
import json
import os
import shutil

import diffusers
import torch
from diffusers import UNet2DConditionModel

from make_if_unet_fixtures import golden, rel_err, save_io, stats, forward

UPSCALER = dict(
    sample_size=16,
    in_channels=7,
    out_channels=4,
    layers_per_block=[1, 2, 1],
    block_out_channels=[8, 16, 24],
    down_block_types=["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    up_block_types=["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
    mid_block_type="UNetMidBlock2DCrossAttn",
    attention_head_dim=[2, 2, 4],  # SD's naming: the number of heads (8- and 6-wide heads)
    cross_attention_dim=20,
    use_linear_projection=True,
    only_cross_attention=[True, True, False],
    num_class_embeds=50,
    act_fn="silu",
    norm_num_groups=4,
    norm_eps=1e-5,
    upcast_attention=False,
)

CONV_PROJ = dict(
    sample_size=16,
    in_channels=4,
    out_channels=4,
    layers_per_block=2,
    block_out_channels=[8, 16],
    down_block_types=["CrossAttnDownBlock2D", "DownBlock2D"],
    up_block_types=["UpBlock2D", "CrossAttnUpBlock2D"],
    mid_block_type="UNetMidBlock2DCrossAttn",
    attention_head_dim=4,
    cross_attention_dim=12,
    use_linear_projection=False,
    only_cross_attention=False,
    act_fn="silu",
    norm_num_groups=4,
    norm_eps=1e-5,
    upcast_attention=True,
    flip_sin_to_cos=False,
    freq_shift=1,
)

BATCH, TOKENS, HEIGHT, WIDTH = 2, 7, 12, 20
TIMESTEPS = {"upscaler": [981, 13], "conv_proj": [500, 77]}
NOISE_LEVELS = [7, 42]  # per sample, below num_class_embeds
SEEDS = {"upscaler": (10, 1010), "conv_proj": (11, 1011)}

IO_DOC = """\
Inputs (float32 unless noted, seeded): sample [B,C,H,W], timestep [B] int64,
  encoder_hidden_states [B,L,cross_attention_dim], class_labels [B] int64 (upscaler: noise levels
  indexing the class-embedding table), cotangent [B,out_channels,H,W].
Expected (float64, weights and inputs cast to float64, run by diffusers):
  out_sample = unet(sample, timestep, encoder_hidden_states, class_labels).sample and the VJPs
  grad_sample, grad_encoder_hidden_states of <out_sample, cotangent>."""


def run(name, config, out_dir, fp16_variant):
    print(f"== {name}")
    model_seed, input_seed = SEEDS[name]
    torch.manual_seed(model_seed)
    model = UNet2DConditionModel(**config).eval()
    model_dir = os.path.join(out_dir, name)
    model.save_pretrained(model_dir, safe_serialization=True)
    if fp16_variant:
        copy.deepcopy(model).half().save_pretrained(model_dir, safe_serialization=True, variant="fp16")

    g = torch.Generator().manual_seed(input_seed)
    io = {
        "sample": torch.randn(BATCH, config["in_channels"], HEIGHT, WIDTH, generator=g),
        "timestep": torch.tensor(TIMESTEPS[name], dtype=torch.int64),
        "encoder_hidden_states": torch.randn(BATCH, TOKENS, config["cross_attention_dim"], generator=g),
        "cotangent": torch.randn(BATCH, config["out_channels"], HEIGHT, WIDTH, generator=g),
    }
    if config.get("num_class_embeds"):
        io["class_labels"] = torch.tensor(NOISE_LEVELS, dtype=torch.int64)
    expected = golden(model, io)
    if fp16_variant:
        expected.update(golden(copy.deepcopy(model).half().float(), io, suffix="_fp16w"))

    out32, s32, c32 = forward(model, io, torch.float32, requires_grad=True)
    gs32, gc32 = torch.autograd.grad(out32, [s32, c32], io["cotangent"])
    print(f"    torch f32 vs f64 golden: out {rel_err(out32, expected['out_sample']):.2e}"
          f"  grad_sample {rel_err(gs32, expected['grad_sample']):.2e}"
          f"  grad_ehs {rel_err(gc32, expected['grad_encoder_hidden_states']):.2e}")
    for k, v in list(io.items()) + list(expected.items()):
        if v.is_floating_point():
            stats(k, v)
    meta = {
        "model_dir": name,
        "description": IO_DOC,
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "generator": "tools/reference/make_sd_unet_fixtures.py",
    }
    save_io(os.path.join(out_dir, f"{name}_io.safetensors"), io, expected, meta)


def main():
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(repo, "tests", "fixtures", "sd_unet"))
    args = ap.parse_args()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    shutil.rmtree(args.out, ignore_errors=True)
    os.makedirs(args.out)
    run("upscaler", UPSCALER, args.out, fp16_variant=True)
    run("conv_proj", CONV_PROJ, args.out, fp16_variant=False)
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(args.out) for f in fs)
    print(f"wrote {args.out}: {total / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
