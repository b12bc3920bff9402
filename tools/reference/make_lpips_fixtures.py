#!/usr/bin/env python3
"""LPIPS (VGG, v0.1) as one safetensors file, and float64 goldens of the `lpips` package.

iterinv reads LPIPS from ONE safetensors file holding exactly `lpips.LPIPS(net="vgg").state_dict()`:

  scaling_layer.shift, scaling_layer.scale   [1, 3, 1, 1]  the input shift/scale constants
  net.slice1.{0,2}.{weight,bias}             VGG16 features 0..3   (conv, relu, conv, relu)
  net.slice2.{5,7}.{weight,bias}             features 4..8         (max pool, 2 convs)
  net.slice3.{10,12,14}.{weight,bias}        features 9..15        (max pool, 3 convs)
  net.slice4.{17,19,21}.{weight,bias}        features 16..22
  net.slice5.{24,26,28}.{weight,bias}        features 23..29
  lin{0..4}.model.1.weight                   [1, C, 1, 1] the v0.1 linear heads (no bias)

The layer indices are torchvision's `vgg16().features` indices, as lpips keeps them.

Modes:

  --real VGG16_PTH --out FILE
      Convert the real weights: torchvision's ImageNet VGG16 (`vgg16-397923af.pth`, the file
      `torchvision.models.vgg16(weights="IMAGENET1K_V1")` downloads into ~/.cache/torch/hub/
      checkpoints/) plus the v0.1 VGG heads shipped inside the `lpips` wheel. The result (58.9 MB
      f32) is what `iterinv score --lpips FILE` wants; the paper's LPIPS is exactly this network.

  (default) fixture mode, writes into --fixtures (tests/fixtures/lpips/):
    reduced.safetensors  a VGG16 with the real layer structure (13 convs, 4 pools, 5 taps) but
                         channel widths 8/12/16/24/24, random (seeded) backbone and random
                         non-negative heads: the loader takes every width from the file's shapes,
                         so this checks the whole network and its loading in 155 KB.
    reduced_io.safetensors  image pairs (f32 values; float64 goldens of the distances and of each
                         tap's term) of several sizes: 40×56, 37×29 (odd: the pools floor), 32×32.
    real_heads.safetensors  the real v0.1 heads from the wheel (1,472 values) and the scaling
                         constants, and golden distances computed with those heads on a FULL-WIDTH
                         VGG16 (64/128/256/512/512) whose weights are not stored: they come from a
                         closed-form generator (splitmix64 of the element index, below) that the
                         Rust test reproduces bit for bit. A full-width backbone is 58.9 MB; this
                         way the real heads are tested at their real widths with 10 KB in the repo.

The images come from the repository's photos (tests/fixtures/photos), cropped; each pair is a
photo and a perturbed copy (noise, a shift, a blur), as values in [-1, 1] (lpips' input range).
Goldens: the lpips package's own LPIPS module, with every weight cast to float64.

Run from the repository root:
    /work/venv/ref/bin/python tools/reference/make_lpips_fixtures.py
(needs torch, torchvision, lpips, safetensors, pillow, numpy: see requirements.txt)
"""
import argparse
import os

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file

import lpips

# torchvision vgg16().features: conv layer indices, grouped by the lpips slice that holds them.
SLICES = [(1, [0, 2]), (2, [5, 7]), (3, [10, 12, 14]), (4, [17, 19, 21]), (5, [24, 26, 28])]
REAL_WIDTHS = [64, 128, 256, 512, 512]
REDUCED_WIDTHS = [8, 12, 16, 24, 24]


def heads_from_wheel():
    path = os.path.join(os.path.dirname(lpips.__file__), "weights", "v0.1", "vgg.pth")
    return torch.load(path, map_location="cpu")


def real_mode(vgg_pth, out):
    features = torch.load(vgg_pth, map_location="cpu")
    model = lpips.LPIPS(net="vgg", pretrained=True, pnet_rand=True, verbose=False)
    sd = model.state_dict()
    for s, convs in SLICES:
        for i in convs:
            for p in ("weight", "bias"):
                src = features[f"features.{i}.{p}"]
                assert sd[f"net.slice{s}.{i}.{p}"].shape == src.shape, (i, p)
                sd[f"net.slice{s}.{i}.{p}"] = src
    save_file({k: v.float().contiguous() for k, v in sd.items()}, out, metadata={"format": "pt"})
    print(f"wrote {out}: {len(sd)} tensors")


def conv_shapes(widths):
    """(slice, index, out, in) of the 13 convs for per-slice widths."""
    shapes, cin = [], 3
    for (s, convs), w in zip(SLICES, widths):
        for i in convs:
            shapes.append((s, i, w, cin))
            cin = w
    return shapes


def splitmix_uniform(n, stream):
    """n values in [-0.5, 0.5): splitmix64 of (stream·2³² + index), top 24 bits. Exact in f32,
    and what models/tests/lpips.rs computes."""
    with np.errstate(over="ignore"):
        z = np.arange(n, dtype=np.uint64) + np.uint64(stream) * np.uint64(1 << 32)
        z = z * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(40)).astype(np.float64) / float(1 << 24) - 0.5


def generated_backbone(widths):
    """Conv k (0..12): weight = u·sqrt(24/fan_in) (variance 2/fan_in, He), stream 2k; bias =
    u·0.1, stream 2k+1; both computed in float64 and rounded once to f32."""
    sd = {}
    for k, (s, i, cout, cin) in enumerate(conv_shapes(widths)):
        fan_in = cin * 9
        w = splitmix_uniform(cout * cin * 9, 2 * k) * np.sqrt(24.0 / fan_in)
        b = splitmix_uniform(cout, 2 * k + 1) * 0.1
        sd[f"net.slice{s}.{i}.weight"] = torch.from_numpy(w.astype(np.float32).reshape(cout, cin, 3, 3))
        sd[f"net.slice{s}.{i}.bias"] = torch.from_numpy(b.astype(np.float32))
    return sd


def build(widths, backbone, heads):
    """lpips.LPIPS at the given widths: its VGG slices rebuilt with narrower convs (same
    structure), then the weights loaded, everything in float64."""
    model = lpips.LPIPS(net="vgg", pretrained=False, pnet_rand=True, verbose=False)
    for s, i, cout, cin in conv_shapes(widths):
        getattr(model.net, f"slice{s}")._modules[str(i)] = torch.nn.Conv2d(cin, cout, 3, padding=1)
    model.chns = widths
    for k, w in enumerate(widths):
        lin = lpips.NetLinLayer(w, use_dropout=True)
        setattr(model, f"lin{k}", lin)
        model.lins[k] = lin
    sd = model.state_dict()
    sd.update(backbone)
    sd.update(heads)
    model.load_state_dict(sd, strict=True)
    return model.eval().double(), {k: v.float().contiguous() for k, v in model.state_dict().items()}


def photo(name, top, left, h, w):
    img = np.asarray(Image.open(f"tests/fixtures/photos/{name}").convert("RGB"), dtype=np.float64)
    crop = img[top : top + h, left : left + w] / 255.0
    return torch.from_numpy(crop.transpose(2, 0, 1).copy())


def pairs(seed):
    """(a, b) in [-1, 1] as f32-exact float64: a photo crop and a perturbed copy."""
    g = torch.Generator().manual_seed(seed)
    out = []
    a = photo("chelsea.png", 10, 20, 40, 56)
    out.append((a, (a + 0.08 * torch.randn(a.shape, generator=g, dtype=torch.float64)).clamp(0, 1)))
    a = photo("coffee.png", 30, 40, 37, 29)
    b = photo("coffee.png", 31, 42, 37, 29)  # shifted by one row and two columns
    out.append((a, b))
    a = photo("camera.png", 60, 50, 32, 32)
    b = torch.nn.functional.avg_pool2d(a[None], 3, stride=1, padding=1, count_include_pad=False)[0]
    out.append((a, b))
    return [((x * 2 - 1).float().double(), (y * 2 - 1).float().double()) for x, y in out]


def distances(model, pairs_):
    d, per = [], []
    with torch.no_grad():
        for a, b in pairs_:
            val, res = model(a[None], b[None], retPerLayer=True)
            d.append(val.reshape(()))
            per.append(torch.stack([r.reshape(()) for r in res]))
    return torch.stack(d), torch.stack(per)


def fixture_mode(out):
    os.makedirs(out, exist_ok=True)
    g = torch.Generator().manual_seed(14)
    backbone = {}
    for s, i, cout, cin in conv_shapes(REDUCED_WIDTHS):
        backbone[f"net.slice{s}.{i}.weight"] = torch.randn(cout, cin, 3, 3, generator=g) * np.sqrt(2.0 / (cin * 9))
        backbone[f"net.slice{s}.{i}.bias"] = torch.randn(cout, generator=g) * 0.1
    heads = {f"lin{k}.model.1.weight": torch.rand(1, w, 1, 1, generator=g) for k, w in enumerate(REDUCED_WIDTHS)}
    model, sd = build(REDUCED_WIDTHS, backbone, heads)
    save_file(sd, os.path.join(out, "reduced.safetensors"), metadata={"format": "pt"})
    ps = pairs(15)
    io = {}
    for k, (a, b) in enumerate(ps):
        io[f"a{k}"], io[f"b{k}"] = a.float(), b.float()
    io["distance"], io["per_layer"] = distances(model, ps)
    save_file(io, os.path.join(out, "reduced_io.safetensors"))
    print("reduced distances", io["distance"].tolist())

    # The real heads at real width, on a generated backbone (not stored).
    real_heads = heads_from_wheel()
    model, sd = build(REAL_WIDTHS, generated_backbone(REAL_WIDTHS), real_heads)
    a = ps[2][0][:, :32, :24]
    b = ps[2][1][:, :32, :24]
    d, per = distances(model, [(a, b)])
    stored = {k: v.float().contiguous() for k, v in real_heads.items()}
    stored["scaling_layer.shift"] = sd["scaling_layer.shift"]
    stored["scaling_layer.scale"] = sd["scaling_layer.scale"]
    stored["a"], stored["b"] = a.float().contiguous(), b.float().contiguous()
    stored["distance"], stored["per_layer"] = d.contiguous(), per.contiguous()
    save_file(stored, os.path.join(out, "real_heads.safetensors"))
    print("real-head distance", d.tolist(), per.tolist())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--real", metavar="VGG16_PTH", help="torchvision's vgg16-397923af.pth")
    ap.add_argument("--out", help="the converted file (--real)")
    ap.add_argument("--fixtures", default="tests/fixtures/lpips")
    args = ap.parse_args()
    if args.real:
        if not args.out:
            ap.error("--real needs --out FILE")
        real_mode(args.real, args.out)
    else:
        fixture_mode(args.fixtures)


if __name__ == "__main__":
    main()
