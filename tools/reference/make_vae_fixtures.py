#!/usr/bin/env python3
"""Golden fixtures for the VAE (diffusers `AutoencoderKL`, the SD x4 upscaler's autoencoder).

Builds one tiny, seeded, randomly initialised AutoencoderKL with diffusers' own constructor,
configured with every field of the real config (../shared/spec/checkpoints/
stable-diffusion-x4-upscaler.vae.json) but smaller and unlike it where that tests more, saves it
with `save_pretrained`, saves a copy whose mid-block attention uses the old key names
(`query`, `key`, `value`, `proj_attn`), and stores seeded inputs with float64 expected outputs.

Output (default tests/fixtures/vae/ in the repository):
    vae/                 config.json + diffusion_pytorch_model.safetensors (f32)
    vae_old_keys/        the same weights, mid-block attention keys renamed to the old names
    vae_io.safetensors   inputs and expected outputs (see IO_DOC)

Run from the repository root:
    /work/venv/ref/bin/python tools/reference/make_vae_fixtures.py
"""
import argparse
import json
import os
import shutil

import torch
from diffusers import AutoencoderKL
from safetensors.torch import load_file, save_file

IO_DOC = """\
Inputs (float32, seeded torch.Generator): image [2,3,24,16] uniform in [-1, 1]; latent [2,4,6,4]
  standard normal.
Expected (float64: the saved f32 weights and the inputs cast to float64, run by diffusers):
  mean, std = vae.encode(image).latent_dist.{mean,std} (unscaled; logvar clamped to [-30, 20]);
  decoded = vae.decode(latent).sample (no scaling factor applied, not clamped).
  mean_fp16w, std_fp16w, decoded_fp16w: the same with every weight rounded to fp16 first (what an
  f32 engine computing with an fp16 copy of the weights should approach; the tests write that
  copy themselves, keeping the fixture small)."""

# Every field of the real config, values shrunk. Choices that matter for testing:
# - 3 blocks of three different widths (8, 16, 24): every resnet of a block's first layer changes
#   width (conv_shortcut), and the decoder's reversed widths are not the encoder's;
# - layers_per_block 1 (real 2): the decoder's blocks have layers_per_block + 1 = 2 resnets;
# - norm_num_groups 4 (real 32): several channels per group (2, 4, 6);
# - the mid-block attention is one head of width 24; the input 24 x 16 is not square, so a
#   height/width mix-up in the downsampler's (0, 1, 0, 1) padding or in the attention's token
#   order shows.
CONFIG = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=["DownEncoderBlock2D"] * 3,
    up_block_types=["UpDecoderBlock2D"] * 3,
    block_out_channels=[8, 16, 24],
    layers_per_block=1,
    latent_channels=4,
    norm_num_groups=4,
    scaling_factor=0.08333,
    sample_size=32,
)

OLD_NAMES = {"to_q": "query", "to_k": "key", "to_v": "value", "to_out.0": "proj_attn"}


def main():
    ap = argparse.ArgumentParser()
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "..", "..", "tests", "fixtures", "vae"))
    args = ap.parse_args()
    out = os.path.abspath(args.out)
    if os.path.isdir(out):
        shutil.rmtree(out)
    os.makedirs(out)
    torch.manual_seed(0)

    vae = AutoencoderKL(**CONFIG).eval()
    # Default init leaves the norms at identity; random affines make every norm matter.
    with torch.no_grad():
        for name, p in vae.named_parameters():
            if "norm" in name and name.endswith("weight"):
                p.uniform_(0.5, 1.5)
            elif "norm" in name and name.endswith("bias"):
                p.uniform_(-0.3, 0.3)
    vae.save_pretrained(os.path.join(out, "vae"))
    with open(os.path.join(out, "vae", "config.json")) as f:
        saved = json.load(f)
    spec_path = os.path.join(here, "..", "..", "tests", "fixtures", "checkpoints",
                             "stable-diffusion-x4-upscaler.vae.json")
    with open(spec_path) as f:
        missing = set(json.load(f)["config"]) - set(saved)
    assert not missing, f"config.json lacks real-config fields {missing}"

    # The old-name copy: same tensors, attention keys renamed as pre-0.14 diffusers wrote them.
    old_dir = os.path.join(out, "vae_old_keys")
    os.makedirs(old_dir)
    shutil.copy(os.path.join(out, "vae", "config.json"), old_dir)
    weights = load_file(os.path.join(out, "vae", "diffusion_pytorch_model.safetensors"))
    renamed = {}
    for key, t in weights.items():
        for new, old in OLD_NAMES.items():
            tag = f".attentions.0.{new}."
            if tag in key:
                key = key.replace(tag, f".attentions.0.{old}.")
        renamed[key] = t
    assert sum(".query." in k for k in renamed) == 4  # weight and bias, encoder and decoder
    save_file(renamed, os.path.join(old_dir, "diffusion_pytorch_model.safetensors"),
              metadata={"format": "pt"})
    # diffusers itself maps the old names back on load: the copy must be the same model.
    old = AutoencoderKL.from_pretrained(old_dir).eval()
    for (a, pa), (b, pb) in zip(vae.state_dict().items(), old.state_dict().items()):
        assert a == b and torch.equal(pa, pb), a

    g = torch.Generator().manual_seed(1)
    image = torch.rand(2, 3, 24, 16, generator=g) * 2 - 1
    latent = torch.randn(2, 4, 6, 4, generator=g)
    vae64 = vae.double()
    with torch.no_grad():
        dist = vae64.encode(image.double()).latent_dist
        decoded = vae64.decode(latent.double()).sample
    with torch.no_grad():
        for p in vae64.parameters():
            p.copy_(p.half().double())
        dist16 = vae64.encode(image.double()).latent_dist
        decoded16 = vae64.decode(latent.double()).sample
    save_file(
        {
            "image": image.contiguous(),
            "latent": latent.contiguous(),
            "mean": dist.mean.contiguous(),
            "std": dist.std.contiguous(),
            "decoded": decoded.contiguous(),
            "mean_fp16w": dist16.mean.contiguous(),
            "std_fp16w": dist16.std.contiguous(),
            "decoded_fp16w": decoded16.contiguous(),
        },
        os.path.join(out, "vae_io.safetensors"),
        metadata={"doc": IO_DOC},
    )
    params = sum(p.numel() for p in vae.parameters())
    print(f"wrote {out}: {params} params, mean max {dist.mean.abs().max():.3f}, "
          f"std range [{dist.std.min():.3f}, {dist.std.max():.3f}], "
          f"decoded max {decoded.abs().max():.3f}")


if __name__ == "__main__":
    main()
