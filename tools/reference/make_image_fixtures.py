#!/usr/bin/env python3
"""Goldens for iterinv's image input and metrics: decoding, centre-crop + bicubic resize, and
MSE / PSNR / SSIM.

Writes tests/fixtures/images/:
  rgb.png, rgba.png, grey.png, grey16.png, photo.jpg   small seeded synthetic images (smooth
                                                       gradients + noise) in each format
  expected.json  for each file: its decoded RGB values in [0, 1] as PIL gives them (RGBA: alpha
                 dropped, grey: repeated, 16-bit: /65535), and the centre-cropped square resized
                 to 16x16 with PIL's BICUBIC filter (antialiased) computed in float ("F" mode per
                 channel, so no 8-bit rounding); metrics between pairs of [-1, 1] images:
                 MSE, PSNR (data range 2) and SSIM (skimage.metrics.structural_similarity,
                 channel_axis 0, data_range 2, its defaults: 7x7 uniform window).

Run from the repository root:
    /work/venv/ref/bin/python tools/reference/make_image_fixtures.py
"""
import json
import os

import numpy as np
from PIL import Image
from skimage.metrics import structural_similarity

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "fixtures", "images")
SIZE = 16


def synthetic(h, w, seed):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([x / w, y / h, (x + y) / (w + h)], axis=-1)
    img = 0.7 * base + 0.3 * rng.random((h, w, 3))
    return np.clip(img, 0, 1)


def pil_resize_float(rgb, size):
    """Centre-crop to a square, then PIL bicubic (antialiased) per channel in float mode."""
    h, w, _ = rgb.shape
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    crop = rgb[top:top + s, left:left + s]
    chans = []
    for c in range(3):
        im = Image.fromarray(crop[:, :, c].astype(np.float32), mode="F")
        chans.append(np.asarray(im.resize((size, size), Image.BICUBIC), dtype=np.float64))
    return np.stack(chans, axis=0)  # [3, size, size]


def main():
    os.makedirs(OUT, exist_ok=True)
    files = {}
    a = synthetic(27, 41, 1)
    Image.fromarray((a * 255).round().astype(np.uint8), "RGB").save(os.path.join(OUT, "rgb.png"))
    rgba = np.concatenate([(a * 255).round(), np.full((27, 41, 1), 128)], axis=-1).astype(np.uint8)
    Image.fromarray(rgba, "RGBA").save(os.path.join(OUT, "rgba.png"))
    g = synthetic(33, 20, 2)[:, :, 0]
    Image.fromarray((g * 255).round().astype(np.uint8), "L").save(os.path.join(OUT, "grey.png"))
    g16 = (synthetic(19, 30, 3)[:, :, 1] * 65535).round().astype(np.uint16)
    Image.fromarray(g16).save(os.path.join(OUT, "grey16.png"))
    Image.fromarray((synthetic(24, 24, 4) * 255).round().astype(np.uint8), "RGB").save(
        os.path.join(OUT, "photo.jpg"), quality=90)

    for name in ["rgb.png", "rgba.png", "grey.png", "grey16.png", "photo.jpg"]:
        im = Image.open(os.path.join(OUT, name))
        if im.mode in ("I;16", "I;16B", "I"):
            arr = np.asarray(im, dtype=np.float64) / 65535.0
            rgb = np.stack([arr] * 3, axis=-1)
        else:
            rgb = np.asarray(im.convert("RGB"), dtype=np.float64) / 255.0
        files[name] = {
            "mode": im.mode,
            "height": rgb.shape[0],
            "width": rgb.shape[1],
            "rgb": rgb.transpose(2, 0, 1).ravel().tolist(),
            "resized": pil_resize_float(rgb, SIZE).ravel().tolist(),
        }

    rng = np.random.default_rng(9)
    x = rng.random((3, SIZE, SIZE)) * 2 - 1
    pairs = []
    for noise in [0.0, 0.01, 0.1, 0.5]:
        y = np.clip(x + noise * rng.standard_normal(x.shape), -1, 1)
        mse = float(np.mean((x - y) ** 2))
        pairs.append({
            "a": x.ravel().tolist(),
            "b": y.ravel().tolist(),
            "mse": mse,
            "psnr": None if mse == 0 else float(10 * np.log10(4.0 / mse)),  # None: infinite
            "ssim": float(structural_similarity(x, y, channel_axis=0, data_range=2.0)),
        })
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump({"size": SIZE, "files": files, "pairs": pairs, "shape": [3, SIZE, SIZE]}, f)
    print("wrote", OUT)


if __name__ == "__main__":
    main()
