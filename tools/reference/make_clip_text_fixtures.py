#!/usr/bin/env python3
"""Golden fixtures for the CLIP text encoder (transformers CLIPTextModel).

Builds, seeded, two tiny random CLIPTextModels unlike each other, each saved with save_pretrained,
and float64 outputs for a few batches of token ids:

  - gelu_legacy/: the Stable Diffusion 2 / x4-upscaler flavour: exact GELU, eos_token_id 2 (a
    config saved before transformers' pooled-token fix: the pooled token is the largest id), 77
    positions, and its weights renamed as transformers 4.x saved them (every key under
    `text_model.`, plus the `text_model.embeddings.position_ids` buffer), in a pipeline-style
    folder (gelu_legacy/text_encoder/);
  - quick_gelu/: the OpenAI CLIP flavour: quick_gelu, a real eos_token_id (the first EOS of each
    row is pooled), 24 positions, keys as transformers 5 names them, with an fp16 copy
    (model.fp16.safetensors, the `variant="fp16"` layout).

  - <name>_io.safetensors: input_ids (int64), attention_mask (int64, quick_gelu only: rows padded
    after their EOS), last_hidden_state and pooler_output in float64 (weights cast to float64).

Run from the repository root:
    /work/venv/ref/bin/python tools/reference/make_clip_text_fixtures.py
(needs torch, transformers, safetensors: see requirements.txt)
"""
import argparse
import json
import os

import torch
from safetensors.torch import load_file, save_file
from transformers import CLIPTextConfig, CLIPTextModel


def randomize(model, seed):
    """Weights far from the init, so that every term shows in the outputs."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "layer_norm" in name and name.endswith("weight"):
                p.copy_(torch.empty_like(p).uniform_(0.5, 1.5, generator=g))
            elif "embedding" in name:
                p.copy_(torch.randn(p.shape, generator=g))
            else:
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)


def run(model, ids, mask):
    with torch.no_grad():
        out = model.double()(input_ids=ids, attention_mask=mask)
    return out.last_hidden_state.contiguous(), out.pooler_output.contiguous()


def gelu_legacy(out):
    vocab, bos, eos, pad = 1000, 998, 2, 0
    config = CLIPTextConfig(
        vocab_size=vocab,
        hidden_size=32,
        intermediate_size=72,
        num_hidden_layers=3,
        num_attention_heads=4,
        max_position_embeddings=77,
        hidden_act="gelu",
        layer_norm_eps=1e-5,
        bos_token_id=0,
        eos_token_id=eos,
        pad_token_id=1,
        projection_dim=16,
        attn_implementation="eager",
    )
    model = CLIPTextModel(config).eval()
    randomize(model, 1)
    folder = os.path.join(out, "gelu_legacy", "text_encoder")
    model.save_pretrained(folder)
    # transformers 4.x layout: every key under text_model., the position_ids buffer saved too.
    path = os.path.join(folder, "model.safetensors")
    weights = load_file(path)
    legacy = {f"text_model.{k}": v for k, v in weights.items()}
    legacy["text_model.embeddings.position_ids"] = torch.arange(77, dtype=torch.int64)[None]
    save_file(legacy, path, metadata={"format": "pt"})

    # SD 2's tokenizer pads with "!" (id 0) after the EOS; the EOS of this vocabulary is its
    # largest id (999), as 49407 is CLIP's. Row 2 pads with the EOS instead (OpenAI's tokenizer),
    # row 3 fills all 77 positions.
    g = torch.Generator().manual_seed(2)
    rows = []
    for length, padding in [(5, pad), (12, pad), (9, vocab - 1), (76, pad)]:
        body = torch.randint(3, vocab - 2, (length,), generator=g).tolist()
        row = [bos] + body + [vocab - 1]
        rows.append((row + [padding] * 77)[:77])
    ids = torch.tensor(rows, dtype=torch.int64)
    hidden, pooled = run(model, ids, None)
    save_file(
        {"input_ids": ids, "last_hidden_state": hidden, "pooler_output": pooled},
        os.path.join(out, "gelu_legacy_io.safetensors"),
    )
    return hidden


def quick_gelu(out):
    vocab, bos, eos, pad = 700, 698, 699, 1
    config = CLIPTextConfig(
        vocab_size=vocab,
        hidden_size=48,
        intermediate_size=40,
        num_hidden_layers=2,
        num_attention_heads=3,
        max_position_embeddings=24,
        hidden_act="quick_gelu",
        layer_norm_eps=1e-5,
        bos_token_id=bos,
        eos_token_id=eos,
        pad_token_id=pad,
        projection_dim=16,
        attn_implementation="eager",
    )
    model = CLIPTextModel(config).eval()
    randomize(model, 3)
    folder = os.path.join(out, "quick_gelu")
    model.save_pretrained(folder)
    fp16 = {k: v.half() for k, v in load_file(os.path.join(folder, "model.safetensors")).items()}
    save_file(fp16, os.path.join(folder, "model.fp16.safetensors"), metadata={"format": "pt"})

    # Length 20 (< 24 positions). Row 0 ends in EOS then padding (masked); row 1 has no EOS at
    # all (transformers pools position 0); row 2 has two EOS (the first is pooled) and no padding.
    g = torch.Generator().manual_seed(4)
    body = lambda n: torch.randint(2, vocab - 2, (n,), generator=g).tolist()
    rows = [
        [bos] + body(6) + [eos] + [pad] * 12,
        [bos] + body(19),
        [bos] + body(5) + [eos] + body(12) + [eos],
    ]
    masks = [
        [1] * 8 + [0] * 12,
        [1] * 20,
        [1] * 20,
    ]
    ids = torch.tensor(rows, dtype=torch.int64)
    mask = torch.tensor(masks, dtype=torch.int64)
    hidden, pooled = run(model, ids, mask)
    save_file(
        {
            "input_ids": ids,
            "attention_mask": mask,
            "last_hidden_state": hidden,
            "pooler_output": pooled,
        },
        os.path.join(out, "quick_gelu_io.safetensors"),
    )
    return hidden


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="tests/fixtures/clip_text")
    args = ap.parse_args()
    torch.manual_seed(0)
    os.makedirs(args.out, exist_ok=True)
    a = gelu_legacy(args.out)
    b = quick_gelu(args.out)
    print(f"wrote {args.out}: |hidden| max {a.abs().max():.3f} (gelu), {b.abs().max():.3f} (quick_gelu)")


if __name__ == "__main__":
    main()
