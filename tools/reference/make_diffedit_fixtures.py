#!/usr/bin/env python3
"""Float64 PyTorch golden of DiffEdit on IF stage I as the IterInv paper's code runs it
(end2end_diffedit.py with IFDiffEditPipeline: generate_mask, invert, __call__), on the tiny trained
stage I. tests/diffedit.rs runs iterinv's implementation (src/pipeline/edit/) on the same inputs.

Run from the repository root (CPU, a few seconds, no network, no GPU):
    /work/venv/ref/bin/python tools/reference/make_diffedit_fixtures.py

Needs tests/fixtures/trained_cascade/stage1 and tests/fixtures/photos/chelsea.png. Writes
tests/fixtures/diffedit/goldens.safetensors (deletes and recreates the folder). Versions as in
tools/reference/requirements.txt; deterministic (one CPU thread, deterministic algorithms, a seeded
generator for the noise maps).

The loop, with the paper's defaults (STEPS 30, GUIDANCE 3, MAPS 10, ENCODE_STRENGTH 0.1, RATIO 1,
INPAINT_STRENGTH 0.8); eps(x, t, ctx) is the UNet's first 3 output channels, guided(x, t, c, w) =
u + w (c - u) from one batched pass on [x; x] with context [negative; c] (negative: the embedding
of "", as the pipeline's default negative prompt):
  mask: t_m = the DDIM schedule's timesteps[STEPS - int(STEPS * ENCODE_STRENGTH)] (= 66); the image
      repeated MAPS times, noised at t_m with MAPS standard normal maps (scheduler.add_noise); one
      UNet pass on the batch [neg x MAPS, src x MAPS, neg x MAPS, tgt x MAPS] at t_m; guided
      source and target; map = mean over the maps and the 3 channels of |e_tgt - e_src| ([16,16]);
      c = mean(map) * RATIO; mask = 1 where clamp(map, 0, c) / c > 0.5, else 0.
  inversion: the inverse DDIM timesteps 0, 33, ..., 957, the first n = int(STEPS * INPAINT_STRENGTH)
      (24) used; at t, from level p = t - 33 (a_p = 1 below 0): e = guided(x, t, src, GUIDANCE),
      x0 = (x - sqrt(1-a_p) e)/sqrt(a_p), x = sqrt(a_t) x0 + sqrt(1-a_t) e (no thresholding); the
      latents after each step, most noisy first: inv[0] (level 759) ... inv[23] (level 0).
  edit: x = inv[0]; for i, t in enumerate(DDIM timesteps[STEPS - n:]) (759, 726, ..., 0):
      x = DDIMScheduler.step(guided(x, t, tgt, GUIDANCE), t, x) (IF's dynamic thresholding, from
      the folder's config); x = x * mask + inv[i] * (1 - mask).
  (The paper's code passes source and target swapped to generate_mask; |e_tgt - e_src| is
  symmetric and both negatives are "", so the mask is the same.)

Inputs (float32 in the file; both sides use exactly these):
  image            [1,3,16,16]  chelsea.png via train_tiny_cascade.load_photo(path, 16)
  source_embeds    [1,77,64]    IFPipeline.encode_prompt(SOURCE, clean_caption=False)
  edit_embeds      [1,77,64]    ... of EDIT
  negative_embeds  [1,77,64]    ... of ""
  mask_noise       [10,1,3,16,16]  torch.randn, generator seeded NOISE_SEED
Outputs (float64):
  mask_map [1,1,16,16], mask [1,1,16,16], inverted [24,1,3,16,16] (most noisy first),
  edited [1,3,16,16]
"""
import json
import os
import shutil
import sys

import numpy
import torch

import diffusers
import transformers
from diffusers import DDIMScheduler, IFPipeline
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_tiny_cascade import load_photo  # noqa: E402

F64 = torch.float64
STEPS = 30
GUIDANCE = 3.0
MAPS = 10
ENCODE_STRENGTH = 0.1
RATIO = 1.0
INPAINT_STRENGTH = 0.8
NOISE_SEED = 11
SOURCE = "a photo of a cat"
EDIT = "a photo of a dog"
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
OUT = os.path.join(ROOT, "tests", "fixtures", "diffedit")


def run(pipe, image, src, edit, neg, noise):
    unet = pipe.unet
    sched = DDIMScheduler.from_config(pipe.scheduler.config)
    sched.set_timesteps(STEPS)
    timesteps = [int(t) for t in sched.timesteps]
    ac = sched.alphas_cumprod.to(F64)
    ratio = sched.config.num_train_timesteps // STEPS

    def eps(x, t, ctx):
        return unet(x, torch.tensor(t), encoder_hidden_states=ctx).sample[:, :3]

    def guided(x, t, cond):
        u, c = eps(torch.cat([x, x]), t, torch.cat([neg, cond])).chunk(2)
        return u + GUIDANCE * (c - u)

    with torch.no_grad():
        # Mask.
        t_m = timesteps[STEPS - min(int(STEPS * ENCODE_STRENGTH), STEPS)]
        images = image.repeat(MAPS, 1, 1, 1)
        noised = sched.add_noise(images, noise, torch.tensor(t_m))
        ctx = torch.cat([neg.repeat(MAPS, 1, 1), src.repeat(MAPS, 1, 1),
                         neg.repeat(MAPS, 1, 1), edit.repeat(MAPS, 1, 1)])
        out = eps(torch.cat([noised] * 4), t_m, ctx)
        neg_s, e_s, neg_t, e_t = out.chunk(4)
        e_src = neg_s + GUIDANCE * (e_s - neg_s)
        e_tgt = neg_t + GUIDANCE * (e_t - neg_t)
        mask_map = (e_tgt - e_src).abs().mean([0, 1]).reshape(1, 1, *image.shape[-2:])
        c = mask_map.mean() * RATIO
        mask = torch.where(mask_map.clamp(0, c) / c <= 0.5, 0.0, 1.0).to(F64)

        # Partial DDIM inversion with guidance.
        n = min(int(STEPS * INPAINT_STRENGTH), STEPS)
        x, inv = image, []
        for t in sorted(timesteps)[:n]:
            p = t - ratio
            a_p = float(ac[p]) if p >= 0 else 1.0
            a_t = float(ac[t])
            e = guided(x, t, src)
            x0 = (x - (1 - a_p) ** 0.5 * e) / a_p ** 0.5
            x = a_t ** 0.5 * x0 + (1 - a_t) ** 0.5 * e
            inv.append(x)
        inv = inv[::-1]

        # Masked denoising with the edit prompt.
        x = inv[0]
        for i, t in enumerate(timesteps[STEPS - n:]):
            x = sched.step(guided(x, t, edit), t, x, eta=0.0).prev_sample
            x = x * mask + inv[i] * (1 - mask)
    return {
        "mask_map": mask_map,
        "mask": mask,
        "inverted": torch.stack(inv),
        "edited": x,
        "encode_timestep": torch.tensor(t_m),
    }


def main():
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    stage1 = os.path.join(ROOT, "tests", "fixtures", "trained_cascade", "stage1")
    pipe = IFPipeline.from_pretrained(stage1, safety_checker=None, feature_extractor=None,
                                      watermarker=None, requires_safety_checker=False)
    embeds = {}
    for name, text in [("source_embeds", SOURCE), ("edit_embeds", EDIT)]:
        cond, neg = pipe.encode_prompt(text, do_classifier_free_guidance=True,
                                       clean_caption=False)
        embeds[name] = cond.float()
        embeds["negative_embeds"] = neg.float()
    image = load_photo(os.path.join(ROOT, "tests", "fixtures", "photos", "chelsea.png"), 16)
    image = image.float()
    generator = torch.Generator().manual_seed(NOISE_SEED)
    noise = torch.randn((MAPS, 3, 16, 16), generator=generator)
    inputs = {"image": image, "mask_noise": noise.reshape(MAPS, 1, 3, 16, 16), **embeds}

    pipe.unet.to(F64).eval()
    up = {k: v.to(F64) for k, v in inputs.items()}
    args = (up["image"], up["source_embeds"], up["edit_embeds"], up["negative_embeds"],
            up["mask_noise"].reshape(MAPS, 3, 16, 16))
    out = run(pipe, *args)
    again = run(pipe, *args)
    for k in out:
        assert torch.equal(out[k], again[k]), f"{k} is not deterministic"
    mask = out["mask"]
    summary = {
        "mask_fraction": float(mask.mean()),
        "closest_to_threshold": float(((out["mask_map"] / (out["mask_map"].mean() * RATIO))
                                       - 0.5).abs().min()),
        "edited_changed_inside_mask": float(((out["edited"] - out["inverted"][-1]).abs()
                                             * mask).max()),
    }
    print(json.dumps(summary, indent=2))
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    meta = {
        "fixture": json.dumps({
            "steps": STEPS, "guidance": GUIDANCE, "maps": MAPS,
            "encode_strength": ENCODE_STRENGTH, "ratio": RATIO,
            "inpaint_strength": INPAINT_STRENGTH, "source": SOURCE, "edit": EDIT,
            "noise_seed": NOISE_SEED, "summary": summary,
            "versions": {"torch": torch.__version__, "diffusers": diffusers.__version__,
                         "transformers": transformers.__version__,
                         "numpy": numpy.__version__},
        })
    }
    tensors = {k: v.contiguous() for k, v in {**inputs, **out}.items()}
    save_file(tensors, os.path.join(OUT, "goldens.safetensors"), metadata=meta)


if __name__ == "__main__":
    main()
