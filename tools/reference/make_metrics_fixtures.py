#!/usr/bin/env python3
"""Goldens of torchmetrics' SSIM and PSNR (and MSE) on the repository's real photos, and the
numbers `iterinv score` must print for one pair (tests/fixtures/metrics/).

The paper scores images in [0, 1] (spec/method.md, "Evaluation in the paper"):
  SSIM  torchmetrics structural_similarity_index_measure(preds, target, data_range=1.0):
        gaussian window 11, sigma 1.5, k1 0.01, k2 0.03; torchmetrics 1.9 pads by reflection and
        averages the map of every pixel's window (border included);
  PSNR  torchmetrics peak_signal_noise_ratio(preds, target, data_range=target.max() - target.min());
  MSE   mean((preds - target)²);
  LPIPS lpips (VGG, v0.1) on inputs ×2 − 1;
  CLIP  torchmetrics CLIPScore of preds against the prompt.
Here target = A (the reference photo), preds = B (the image scored), as `iterinv score A B`.

Pairs, each written as two 8-bit PNGs (the photo, or a lower-contrast copy as the target, and a
perturbed copy), so that the Rust test and the CLI read exactly these pixels:
  chelsea   192×128 RGB vs the same plus seeded gaussian noise (σ 12 levels), rounded and clipped;
  coffee    192×128 RGB vs a PIL GaussianBlur(1.2) copy;
  camera    128×128 grey (read as RGB) at 0.7× contrast + 30 (the target's range is < 1, so the
            PSNR data range matters) vs that shifted down by 2 rows.
expected.json: per pair mse, psnr, ssim (float64 inputs, so float64 goldens); for "chelsea" also
lpips (tests/fixtures/lpips/reduced.safetensors) and clip_score (tests/fixtures/clip_score/model,
prompt "a photo of a cat"), both float64 — run make_lpips_fixtures.py and
make_clip_score_fixtures.py first.

Run from the repository root:
    /work/venv/ref/bin/python tools/reference/make_metrics_fixtures.py
(needs torch, torchmetrics, lpips, transformers, safetensors, pillow: see requirements.txt)
"""
import json
import os
import sys

import numpy as np
import torch
from PIL import Image, ImageFilter
from safetensors.torch import load_file
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

sys.path.insert(0, os.path.dirname(__file__))
import make_lpips_fixtures as lp  # noqa: E402

OUT = "tests/fixtures/metrics"
PROMPT = "a photo of a cat"


def rgb(path):
    return np.asarray(Image.open(path).convert("RGB"))


def pairs():
    rng = np.random.default_rng(14)
    chelsea = rgb("tests/fixtures/photos/chelsea.png")
    noisy = np.clip(np.round(chelsea + rng.normal(0, 12, chelsea.shape)), 0, 255).astype(np.uint8)
    coffee = Image.open("tests/fixtures/photos/coffee.png").convert("RGB")
    blurred = np.asarray(coffee.filter(ImageFilter.GaussianBlur(1.2)))
    camera = rgb("tests/fixtures/photos/camera.png").astype(np.float64)
    low = np.round(camera * 0.7 + 30).astype(np.uint8)
    shifted = np.concatenate([low[2:], low[-2:]], axis=0)
    return {"chelsea": (chelsea, noisy), "coffee": (np.asarray(coffee), blurred), "camera": (low, shifted)}


def tensor01(a):
    return torch.from_numpy(a.astype(np.float64) / 255.0).permute(2, 0, 1)[None]


def main():
    os.makedirs(OUT, exist_ok=True)
    expected = {}
    for name, (a, b) in pairs().items():
        Image.fromarray(a).save(f"{OUT}/{name}_a.png")
        Image.fromarray(b).save(f"{OUT}/{name}_b.png")
        # Read back, so the goldens are of exactly the stored pixels.
        ta, tb = tensor01(rgb(f"{OUT}/{name}_a.png")), tensor01(rgb(f"{OUT}/{name}_b.png"))
        rng = float(ta.max() - ta.min())
        expected[name] = {
            "mse": float(((ta - tb) ** 2).mean()),
            "psnr": float(peak_signal_noise_ratio(tb, ta, data_range=rng)),
            "ssim": float(structural_similarity_index_measure(tb, ta, data_range=1.0)),
            "data_range": rng,
        }
    # LPIPS and CLIP score of the chelsea pair, through the same fixtures the Rust tests load.
    ta, tb = tensor01(rgb(f"{OUT}/chelsea_a.png")), tensor01(rgb(f"{OUT}/chelsea_b.png"))
    sd = load_file("tests/fixtures/lpips/reduced.safetensors")
    backbone = {k: v for k, v in sd.items() if k.startswith("net.")}
    heads = {k: v for k, v in sd.items() if k.startswith("lin")}
    model, _ = lp.build(lp.REDUCED_WIDTHS, backbone, heads)
    with torch.no_grad():
        expected["chelsea"]["lpips"] = float(model(ta * 2 - 1, tb * 2 - 1).reshape(()))

    from transformers import CLIPModel, CLIPProcessor

    folder = "tests/fixtures/clip_score/model"
    clip = CLIPModel.from_pretrained(folder).eval().double()
    processor = CLIPProcessor.from_pretrained(folder)
    img = torch.from_numpy(rgb(f"{OUT}/chelsea_b.png")).permute(2, 0, 1).contiguous()
    with torch.no_grad():
        pv = processor(images=[img], return_tensors="pt")["pixel_values"].double()
        ie = clip.visual_projection(clip.vision_model(pixel_values=pv).pooler_output)
        t = processor(text=[PROMPT], return_tensors="pt", padding=True)
        te = clip.text_projection(clip.text_model(**t).pooler_output)
    cos = float((ie / ie.norm()) @ (te / te.norm()).T)
    expected["chelsea"]["clip_score"] = 100 * max(cos, 0.0)
    expected["prompt"] = PROMPT
    with open(f"{OUT}/expected.json", "w") as f:
        json.dump(expected, f, indent=1)
    print(json.dumps(expected, indent=1))


if __name__ == "__main__":
    main()
