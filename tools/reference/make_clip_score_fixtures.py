#!/usr/bin/env python3
"""Golden fixtures for CLIP score: transformers' CLIPModel + CLIPProcessor as torchmetrics'
CLIPScore runs them (`100 · max(cos(image_embeds, text_embeds), 0)`).

Builds, seeded, a tiny random CLIPModel and saves it with save_pretrained into
tests/fixtures/clip_score/model/ together with its processor (save_pretrained of a CLIPProcessor:
the image processor's config and the tokenizer):

  - vision tower: 30×30 input, 6×6 patches (25 + the class token), width 24, 2 layers, 3 heads,
    quick_gelu; text tower: width 32, 2 layers, 4 heads, 24 positions, quick_gelu; projections
    to 16 (`visual_projection`, `text_projection`, no bias).
  - tokenizer: CLIP's byte-level BPE cut to its first 300 merges (the real vocabulary keeps the
    256 byte symbols, their 256 `</w>` forms, then one token per merge in merge order, then the
    two specials, so a prefix of the merges with those tokens is a valid smaller vocabulary: 814
    tokens, the specials at 812/813) — the real 49,408-token vocabulary would make the embedding
    table 6 MB.
  - image processor: CLIPImageProcessor with shortest_edge 30 and a 30×30 crop (the OpenAI
    mean/std, bicubic); transformers 5 uses its torchvision backend, which resizes uint8 images
    with torch's native uint8 antialiased bicubic (two passes with uint8 rounding between them).

Inputs: the repository's three photos (192×128 RGB, 192×128 RGB, 128×128 grey) and a 20×27 crop of
one of them (upscaled by the processor), as uint8 [3, H, W] tensors, as torchmetrics passes them.
`io.safetensors` holds, for each image k: pixel_values{k} (the processor's f32 output),
image_embeds{k} (float64: the model cast to float64 on those pixel values); for the prompts:
input_ids{j} (int64), text_embeds{j} (float64); `cosine` and `score` [images, prompts]
(float64; score = 100·max(cos, 0); this seed gives positive cosines, so no score is clamped). The script checks its scores against torchmetrics' CLIPScore on the same
model and processor (float32, so to ~1e-4; torchmetrics 1.9 reads `get_image_features` as a
tensor where transformers 5 returns an output object: a small adapter hands it `.pooler_output`).

Run from the repository root:
    /work/venv/ref/bin/python tools/reference/make_clip_score_fixtures.py
(needs torch, torchvision, transformers, torchmetrics, safetensors, pillow: see requirements.txt)
"""
import argparse
import json
import os
import shutil
import tempfile

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file
from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

PROMPTS = ["a photo of a cat", "a cup of coffee on a table, seen from above!"]
MERGES = 300


def tokenizer(tmp):
    src = "tests/fixtures/clip_tokenizer/tokenizer"
    full = json.load(open(os.path.join(src, "vocab.json"), encoding="utf-8"))
    lines = open(os.path.join(src, "merges.txt"), encoding="utf-8").read().split("\n")
    merges = [l for l in lines[1:] if l][:MERGES]
    by_id = sorted(full.items(), key=lambda kv: kv[1])
    vocab = [t for t, _ in by_id[:512]] + ["".join(m.split(" ")) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    assert vocab[:512 + MERGES] == [t for t, _ in by_id[:512 + MERGES]]
    with open(os.path.join(tmp, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump({t: i for i, t in enumerate(vocab)}, f, ensure_ascii=False)
    with open(os.path.join(tmp, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "\n".join(merges) + "\n")
    tok = CLIPTokenizer(os.path.join(tmp, "vocab.json"), os.path.join(tmp, "merges.txt"), model_max_length=24)
    return tok, len(vocab)


def randomize(model, seed):
    """Weights far from the init, so that every term shows in the outputs."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ("layer_norm" in name or "layrnorm" in name) and name.endswith("weight"):
                p.copy_(torch.empty_like(p).uniform_(0.5, 1.5, generator=g))
            elif "embedding" in name:
                p.copy_(torch.randn(p.shape, generator=g))
            elif name == "logit_scale":
                pass
            else:
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)


class Features(torch.nn.Module):
    """torchmetrics 1.9 expects get_image_features / get_text_features to return the projected
    embeddings as tensors; transformers 5 returns a BaseModelOutputWithPooling whose
    pooler_output is that tensor. This adapter hands torchmetrics the tensor."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.config = model.config

    def get_image_features(self, *a, **k):
        return self.model.get_image_features(*a, **k).pooler_output

    def get_text_features(self, *a, **k):
        return self.model.get_text_features(*a, **k).pooler_output


def images():
    out = []
    for name in ["chelsea.png", "coffee.png", "camera.png"]:
        img = np.asarray(Image.open(f"tests/fixtures/photos/{name}").convert("RGB"))
        out.append(img)
    crop = out[1][40:60, 70:97]  # 20 rows × 27 columns: upscaled to 30×40
    Image.fromarray(crop).save("tests/fixtures/clip_score/coffee_crop.png")
    out.append(crop)
    return [torch.from_numpy(np.ascontiguousarray(i)).permute(2, 0, 1).contiguous() for i in out]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="tests/fixtures/clip_score")
    args = ap.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    os.makedirs(args.out)
    tmp = tempfile.mkdtemp()
    tok, vocab = tokenizer(tmp)
    config = CLIPConfig(
        text_config=dict(
            vocab_size=vocab, hidden_size=32, intermediate_size=37, num_hidden_layers=2,
            num_attention_heads=4, max_position_embeddings=24, hidden_act="quick_gelu",
            layer_norm_eps=1e-5, bos_token_id=vocab - 2, eos_token_id=vocab - 1, pad_token_id=vocab - 1,
        ),
        vision_config=dict(
            hidden_size=24, intermediate_size=40, num_hidden_layers=2, num_attention_heads=3,
            image_size=30, patch_size=6, num_channels=3, hidden_act="quick_gelu", layer_norm_eps=1e-5,
        ),
        projection_dim=16,
        attn_implementation="eager",
    )
    torch.manual_seed(0)
    model = CLIPModel(config).eval()
    randomize(model, 7)
    folder = os.path.join(args.out, "model")
    model.save_pretrained(folder)
    processor = CLIPProcessor(
        image_processor=CLIPImageProcessor(size={"shortest_edge": 30}, crop_size={"height": 30, "width": 30}),
        tokenizer=tok,
    )
    processor.save_pretrained(folder)
    processor = CLIPProcessor.from_pretrained(folder)  # what a user's folder gives

    m64 = model.double()
    io = {}
    imgs = images()
    image_embeds, text_embeds = [], []
    with torch.no_grad():
        for k, img in enumerate(imgs):
            pv = processor(images=[img], return_tensors="pt")["pixel_values"]
            io[f"pixel_values{k}"] = pv.float().contiguous()
            pooled = m64.vision_model(pixel_values=pv.double()).pooler_output
            e = m64.visual_projection(pooled)[0]
            io[f"image_embeds{k}"] = e.contiguous()
            image_embeds.append(e)
        for j, p in enumerate(PROMPTS):
            t = processor(text=[p], return_tensors="pt", padding=True)
            io[f"input_ids{j}"] = t["input_ids"]
            pooled = m64.text_model(input_ids=t["input_ids"], attention_mask=t["attention_mask"]).pooler_output
            e = m64.text_projection(pooled)[0]
            io[f"text_embeds{j}"] = e.contiguous()
            text_embeds.append(e)
    ie = torch.stack(image_embeds)
    te = torch.stack(text_embeds)
    cos = (ie / ie.norm(dim=-1, keepdim=True)) @ (te / te.norm(dim=-1, keepdim=True)).T
    io["cosine"] = cos.contiguous()
    io["score"] = (100 * cos).clamp(min=0).contiguous()
    save_file(io, os.path.join(args.out, "io.safetensors"))

    # The same numbers through torchmetrics (float32 model, so to ~1e-4).
    from torchmetrics.multimodal.clip_score import CLIPScore

    model32 = Features(CLIPModel.from_pretrained(folder).eval())
    for k, img in enumerate(imgs):
        for j, p in enumerate(PROMPTS):
            metric = CLIPScore(model_name_or_path=lambda: (model32, processor))
            metric.update([img], [p])
            got = float(metric.compute())
            want = float(io["score"][k, j])
            assert abs(got - want) < 1e-3, (k, j, got, want)
    print("scores (images × prompts):", io["score"].tolist())
    print("cos:", cos.tolist())


if __name__ == "__main__":
    main()
