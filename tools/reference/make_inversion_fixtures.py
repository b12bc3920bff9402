#!/usr/bin/env python3
"""Float64 PyTorch goldens of iterinv's inversion loops (engine/src/invert) on the tiny trained IF
cascade: DDIM inversion, null-text inversion (NTI) with IF's dynamic thresholding, faithful IterInv
and the forward-only fixed point. tests/inversion_goldens.rs runs the engine's implementations on the
same inputs and compares per-step losses and final tensors.

Run from the repository root (CPU, about 15 s, no network, no GPU):
    /work/venv/ref/bin/python tools/reference/make_inversion_fixtures.py

Needs tests/fixtures/trained_cascade/{stage1,stage2} and tests/fixtures/photos/chelsea.png (both
written by train_tiny_cascade.py, whose load_photo and PROMPTS this script imports). Writes
tests/fixtures/inversion/goldens.safetensors (deletes and recreates the folder; 270 KB). Versions
of the committed file: torch 2.15.0, diffusers 0.42.1, transformers 5.24.0, numpy 2.4.6,
Pillow 13.0.0, Python 3.11 (tools/reference/requirements.txt). Deterministic: one CPU thread,
torch.use_deterministic_algorithms, a seeded generator for the one noise draw; the script runs the
whole computation twice and checks the results are bitwise equal.

Inputs (float32 in the file; both sides use exactly these values, so neither T5, the image loader nor
the condition's resize is a factor in the comparison):
  stage1_image     [1,3,16,16]  chelsea.png: centre square crop, PIL bicubic in float mode, [-1, 1]
                                (train_tiny_cascade.load_photo(path, 16))
  stage2_image     [1,3,32,32]  the same at 32 px
  prompt_embeds    [1,77,64]    IFPipeline.encode_prompt("a photo of a cat", clean_caption=False),
  negative_embeds  [1,77,64]    and of "" (the pipeline's negative prompt), float32 pipeline
  stage2_condition_noise [1,3,32,32]  torch.randn, Generator seeded NOISE_SEED, float32
  stage2_condition [1,3,32,32]  IFSuperResolutionPipeline's conditioning: F.interpolate(stage1_image,
                                32, "bilinear", align_corners=True), image_noising_scheduler.add_noise
                                at level 250 with that noise (float64), rounded to float32
Models: both pipelines from_pretrained (float32 weights), UNets cast to float64. The sampler is
DDIMScheduler.from_config(pipe.scheduler.config) (as the engine builds it from the folder: IF's
thresholding (ratio 0.95, max 1.5 / 1.0), set_alpha_to_one default true, "leading" spacing) with
set_timesteps(10): 900, 800, ..., 0. Its step is diffusers' own DDIMScheduler.step (eta 0), run in
float64 with autograd through it (torch.quantile, clamps); its scalar coefficients are float32 as
diffusers computes them. The other formulas take the float32 alphas_cumprod widened to float64.

The loops (the engine's, engine/src/invert; a "step" is the DDIM step above; eps(x, t, ctx) is the
UNet's first 3 output channels; stage II's UNet input is cat[x, stage2_condition] with class label
250):
  guided(x, t, null, w): w > 1: one batched pass on [x; x] with context [null; cond],
      u + w (c - u) on the first 3 channels; else eps(x, t, cond).
  ddim inversion (ddim::invert): x <- image; for t = 0, 100, ..., 900 with p = t - 100 (a_p = 1 for
      t = 0): e = guided(x, t), x0 = (x - sqrt(1-a_p) e)/sqrt(a_p), x = sqrt(a_t) x0 + sqrt(1-a_t) e.
      No thresholding on the way up. trace = [image, x after each t].
  NTI (nti::null_text_inversion, Adam per timestep): null <- negative_embeds; x <- trace[10]; for
      i, t in enumerate(900, ..., 0): target = trace[9 - i]; a fresh torch.optim.Adam([null],
      lr = 1e-3 (1 - i/100)) (defaults otherwise); 3 times: loss = sum((step(guided(x, t, null, 3))
      - target)^2), backward, Adam step; then x <- step(guided(x, t, null, 3)) with the updated null
      and final_loss = sum((x - target)^2). nti_reconstruction: guided DDIM sampling from trace[10]
      with the 10 per-step nulls (nti::reconstruct).
  IterInv, faithful (iterinv::iterinv, IterInvMode::Faithful, warm_start 0): target <- image; for
      i, t in enumerate(0, 100, ..., 900): z <- target; 4 times: z <- z - s_i grad_z sum((step(
      guided(z, t)) - target)^2) with s_i = 0.3 sqrt(1 - 0.5 i/9); final_loss at the last z;
      target <- z. Returns z_T.
  fixed point (iterinv::fixed_point, 3 passes): target <- image; for t = 0, ..., 900: z <- target;
      3 times: e = guided(z, t), x0 = (target - sqrt(1-a_p) e)/sqrt(a_p), z = sqrt(a_t) x0 +
      sqrt(1-a_t) e; final_loss = sum((step(guided(z, t)) - target)^2) (thresholded step); target <- z.

Outputs (float64; losses in step order, i.e. the order the engine reports them):
  timesteps                  int64 [10]          900 ... 0 (sampling order)
  stage1_ddim_trace          [11,1,3,16,16]      guidance 1 (conditional pass only)
  stage1_nti_losses          [10]                StepReport.final_loss, sampling order (t = 900 first)
  stage1_nti_null            [1,77,64]           the null after the last timestep (t = 0)
  stage1_nti_reconstruction  [1,3,16,16]
  stage2_ddim_z_t            [1,3,32,32]         ddim inversion's last entry, guidance 1
  stage2_iterinv_losses      [10]                inversion order (t = 0 first)
  stage2_iterinv_z_t         [1,3,32,32]
  stage2_fixed_point_losses  [10]                inversion order
  stage2_fixed_point_z_t     [1,3,32,32]
The metadata key "fixture" holds the settings, versions and the loss summaries as JSON.
"""
import argparse
import json
import math
import os
import shutil
import sys

import numpy
import PIL
import torch
import torch.nn.functional as F

import diffusers
import transformers
from diffusers import DDIMScheduler, IFPipeline, IFSuperResolutionPipeline
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_tiny_cascade import PROMPTS, load_photo  # noqa: E402  (sibling script, main() guarded)

F64 = torch.float64
PHOTO = "chelsea"
STEPS = 10
NOISE_LEVEL = 250
NOISE_SEED = 77
NTI = dict(guidance=3.0, inner_steps=3, lr=1e-3)  # sum loss, thresholding (the scheduler's)
ITERINV = dict(inner_steps=4, step_size=0.3)
FIXED_POINT_PASSES = 3
SIZE_BUDGET = 300_000


class Stage:
    """One stage's float64 UNet, DDIM scheduler and (stage II) conditioning image."""

    def __init__(self, unet, scheduler_config, low_res=None, steps=STEPS, dtype=F64):
        self.unet = unet.to(dtype).eval()
        for p in self.unet.parameters():
            p.requires_grad_(False)
        self.sched = DDIMScheduler.from_config(scheduler_config)
        self.sched.set_timesteps(steps)
        self.timesteps = [int(t) for t in self.sched.timesteps]
        self.ac = self.sched.alphas_cumprod.to(F64)  # diffusers' float32 values, widened
        self.final_ac = float(self.sched.final_alpha_cumprod)
        self.ratio = self.sched.config.num_train_timesteps // steps
        self.low_res = low_res

    def alphas(self, t):
        """(a_t, a_p): a_p of the timestep a step from t lands on (the final one before 0)."""
        p = t - self.ratio
        return float(self.ac[t]), (float(self.ac[p]) if p >= 0 else self.final_ac)

    def eps(self, x, t, ctx):
        """The UNet's first 3 channels for x (batch B) under ctx (batch B)."""
        b = x.shape[0]
        kwargs = {}
        if self.low_res is not None:
            x = torch.cat([x, self.low_res.expand(b, -1, -1, -1)], 1)
            kwargs["class_labels"] = torch.tensor([NOISE_LEVEL] * b)
        out = self.unet(x, torch.tensor(t), encoder_hidden_states=ctx, **kwargs).sample
        return out[:, :3]

    def guided(self, x, t, cond, null=None, w=1.0):
        if null is None or w <= 1.0:
            return self.eps(x, t, cond)
        u, c = self.eps(torch.cat([x, x]), t, torch.cat([null, cond])).chunk(2)
        return u + w * (c - u)

    def step(self, e, t, x):
        return self.sched.step(e, t, x, eta=0.0).prev_sample

    def step_loss(self, x, t, target, cond, null=None, w=1.0):
        return ((self.step(self.guided(x, t, cond, null, w), t, x) - target) ** 2).sum()

    def ddim_invert(self, image, cond):
        x, trace = image, [image]
        with torch.no_grad():
            for t in reversed(self.timesteps):
                a_t, a_p = self.alphas(t)
                e = self.guided(x, t, cond)
                x0 = (x - math.sqrt(1 - a_p) * e) / math.sqrt(a_p)
                x = math.sqrt(a_t) * x0 + math.sqrt(1 - a_t) * e
                trace.append(x)
        return trace

    def nti(self, trace, cond, null_init, guidance, inner_steps, lr):
        null = null_init.clone()
        x = trace[-1]
        nulls, losses = [], []
        for i, t in enumerate(self.timesteps):
            target = trace[-2 - i]
            p = null.clone().requires_grad_(True)
            adam = torch.optim.Adam([p], lr=lr * (1 - i / 100))
            for _ in range(inner_steps):
                adam.zero_grad()
                self.step_loss(x, t, target, cond, p, guidance).backward()
                adam.step()
            null = p.detach().clone()
            with torch.no_grad():
                x = self.step(self.guided(x, t, cond, null, guidance), t, x)
                losses.append(((x - target) ** 2).sum().item())
            nulls.append(null)
        return nulls, losses

    def reconstruct(self, x, cond, nulls=None, guidance=1.0):
        with torch.no_grad():
            for i, t in enumerate(self.timesteps):
                null = nulls[i] if nulls is not None else None
                x = self.step(self.guided(x, t, cond, null, guidance), t, x)
        return x

    def iterinv(self, image, cond, inner_steps, step_size):
        n = len(self.timesteps)
        sizes = [step_size * math.sqrt(1 - 0.5 * i / (n - 1)) for i in range(n)]
        target, losses = image, []
        for i, t in enumerate(reversed(self.timesteps)):
            z = target.clone()
            for _ in range(inner_steps):
                zt = z.clone().requires_grad_(True)
                (g,) = torch.autograd.grad(self.step_loss(zt, t, target, cond), zt)
                z = z - sizes[i] * g
            with torch.no_grad():
                losses.append(self.step_loss(z, t, target, cond).item())
            target = z
        return target, losses

    def fixed_point(self, image, cond, passes):
        target, losses = image, []
        with torch.no_grad():
            for t in reversed(self.timesteps):
                a_t, a_p = self.alphas(t)
                z = target
                for _ in range(passes):
                    e = self.guided(z, t, cond)
                    x0 = (target - math.sqrt(1 - a_p) * e) / math.sqrt(a_p)
                    z = math.sqrt(a_t) * x0 + math.sqrt(1 - a_t) * e
                losses.append(self.step_loss(z, t, target, cond).item())
                target = z
        return target, losses


def psnr(a, b):
    """PSNR on [-1, 1] with data range 2 (iterinv's metric)."""
    return 10 * math.log10(4 / ((a - b) ** 2).mean().item())


def run(cascade, photos):
    """Everything, from the folders: returns (tensors, summary)."""
    p1 = IFPipeline.from_pretrained(os.path.join(cascade, "stage1"))
    p2 = IFSuperResolutionPipeline.from_pretrained(os.path.join(cascade, "stage2"))
    prompt = PROMPTS[PHOTO]
    with torch.no_grad():
        cond32, null32 = p1.encode_prompt(prompt, do_classifier_free_guidance=True, negative_prompt=None,
                                          device=torch.device("cpu"), clean_caption=False)
    assert cond32.dtype == torch.float32 and cond32.shape == null32.shape
    photo = os.path.join(photos, f"{PHOTO}.png")
    image16 = load_photo(photo, 16).float()
    image32 = load_photo(photo, 32).float()
    noise = torch.randn((1, 3, 32, 32), generator=torch.Generator().manual_seed(NOISE_SEED),
                        dtype=torch.float32)
    up = F.interpolate(image16.to(F64), (32, 32), mode="bilinear", align_corners=True)
    condition32 = p2.image_noising_scheduler.add_noise(up, noise.to(F64), torch.tensor([NOISE_LEVEL])).float()

    cond, null = cond32.to(F64), null32.to(F64)
    s1 = Stage(p1.unet, p1.scheduler.config)
    s2 = Stage(p2.unet, p2.scheduler.config, low_res=condition32.to(F64))
    assert s1.timesteps == s2.timesteps == list(range(900, -1, -100)), s1.timesteps

    x16, x32 = image16.to(F64), image32.to(F64)
    trace = s1.ddim_invert(x16, cond)
    nulls, nti_losses = s1.nti(trace, cond, null, **NTI)
    nti_rec = s1.reconstruct(trace[-1], cond, nulls, NTI["guidance"])
    # For the summary only: what NTI improves on (the same x_T, the initial null at every step),
    # and what the guidance-1 trace regenerates.
    plain_rec = s1.reconstruct(trace[-1], cond, [null] * STEPS, NTI["guidance"])
    ddim_rec1 = s1.reconstruct(trace[-1], cond)

    ddim2 = s2.ddim_invert(x32, cond)[-1]
    it_z, it_losses = s2.iterinv(x32, cond, **ITERINV)
    fp_z, fp_losses = s2.fixed_point(x32, cond, FIXED_POINT_PASSES)
    ddim2_losses = []
    with torch.no_grad():
        tr2 = s2.ddim_invert(x32, cond)
        for i, t in enumerate(reversed(s2.timesteps)):
            ddim2_losses.append(s2.step_loss(tr2[i + 1], t, tr2[i], cond).item())

    for name, v in [("nti", nti_losses), ("iterinv", it_losses), ("fixed point", fp_losses)]:
        assert all(math.isfinite(x) for x in v), (name, v)
    tensors = {
        "timesteps": torch.tensor(s1.timesteps, dtype=torch.int64),
        "stage1_image": image16, "stage2_image": image32,
        "prompt_embeds": cond32, "negative_embeds": null32,
        "stage2_condition_noise": noise, "stage2_condition": condition32,
        "stage1_ddim_trace": torch.stack(trace),
        "stage1_nti_losses": torch.tensor(nti_losses, dtype=F64),
        "stage1_nti_null": nulls[-1],
        "stage1_nti_reconstruction": nti_rec,
        "stage2_ddim_z_t": ddim2,
        "stage2_iterinv_losses": torch.tensor(it_losses, dtype=F64), "stage2_iterinv_z_t": it_z,
        "stage2_fixed_point_losses": torch.tensor(fp_losses, dtype=F64), "stage2_fixed_point_z_t": fp_z,
    }
    summary = {
        "stage1_psnr_db": {"nti_reconstruction": psnr(nti_rec, x16),
                           "guided_with_initial_null": psnr(plain_rec, x16),
                           "ddim_guidance_1": psnr(ddim_rec1, x16)},
        "stage1_nti_losses": nti_losses,
        "stage2_iterinv_losses": it_losses,
        "stage2_fixed_point_losses": fp_losses,
        "stage2_ddim_step_losses": ddim2_losses,
        "null_change_max": (nulls[-1] - null).abs().max().item(),
    }
    return {k: v.contiguous() for k, v in tensors.items()}, summary


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cascade", default="tests/fixtures/trained_cascade")
    ap.add_argument("--photos", default="tests/fixtures/photos")
    ap.add_argument("--out", default="tests/fixtures/inversion")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)

    tensors, summary = run(args.cascade, args.photos)
    again, _ = run(args.cascade, args.photos)
    for k in tensors:
        assert torch.equal(tensors[k], again[k]), f"{k} differs between two runs"

    meta = {
        "photo": PHOTO, "prompt": PROMPTS[PHOTO], "negative_prompt": "", "clean_caption": False,
        "cascade": args.cascade, "steps": STEPS, "noise_level": NOISE_LEVEL, "noise_seed": NOISE_SEED,
        "stage1": {"ddim_guidance": 1.0, "nti": dict(NTI, loss="sum", thresholding=True)},
        "stage2": {"guidance": 1.0, "iterinv": dict(ITERINV, mode="faithful"),
                   "fixed_point_passes": FIXED_POINT_PASSES},
        "versions": {"torch": torch.__version__, "diffusers": diffusers.__version__,
                     "transformers": transformers.__version__, "numpy": numpy.__version__,
                     "pillow": PIL.__version__, "python": sys.version.split()[0]},
        "summary": summary,
    }
    shutil.rmtree(args.out, ignore_errors=True)
    os.makedirs(args.out)
    path = os.path.join(args.out, "goldens.safetensors")
    save_file(tensors, path, metadata={"fixture": json.dumps(meta, sort_keys=True)})
    size = os.path.getsize(path)
    print(json.dumps(summary, indent=1))
    print(f"wrote {path}: {size:,} bytes")
    assert size < SIZE_BUDGET, f"{path} is {size:,} bytes, over {SIZE_BUDGET:,}"


if __name__ == "__main__":
    main()
