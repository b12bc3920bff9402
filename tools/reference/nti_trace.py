#!/usr/bin/env python3
"""Null-text inversion at stage I of a tiny trained IF cascade, timestep by timestep, in PyTorch:
what iterinv's NTI is compared against (tests/nti_timesteps.rs, BENCHMARKS.md).

Runs the IterInv code's recipe (make_inversion_fixtures.Stage: DDIM inversion at guidance 1 with the
UNet at the destination timestep, then per timestep a fresh Adam, lr 1e-3 (1 - i/100), 51 inner
steps of the summed squared error of the guided (w = 3) DDIM step through IF's dynamic thresholding,
one guided pass with the updated null to advance) on one held-out photo, and records after every
timestep the null embedding, the latent and the inner losses:

  float64  the reference trajectory;
  float32  the same loop in float32 (the precision iterinv computes in), then --spread more float32
           runs whose image differs from the first by one ulp in a random half of its elements:
           how far rounding alone moves the loop's final PSNR.

Run from the repository root (CPU, one thread; about 1 minute per float32 run at 16 px):
    /work/venv/ref/bin/python tools/reference/nti_trace.py --photo chelsea --out /tmp/nti_chelsea.safetensors

Inputs (float32 in the file, so the engine runs on exactly these values): image [1,3,S,S] (load_photo),
prompt_embeds / negative_embeds [1,77,D] from IFPipeline.encode_prompt(prompt, clean_caption=False).
Outputs (float64; timesteps in sampling order, 980 first):
  timesteps [T]; trace_f64 [T+1,1,3,S,S] (the DDIM inversion);
  x_f64 / x_f32 [T,1,3,S,S]   the latent after each timestep's advance (the last is the reconstruction);
  null_f64 / null_f32 [T,1,77,D]; losses_f64 / losses_f32 [T, inner] (inner losses before each Adam
  step); final_f64 / final_f32 [T] (the advanced step's loss);
  image_ulp [spread,1,3,S,S] (float32) the perturbed images;
  psnr_spread [spread + 1] (the first float32 run, then the perturbed ones; PSNR against the image);
  psnr_f32_unbatched, psnr_f32_channels_last [1] (--variants) other float32 roundings of the same loop;
  psnr_f64 [1] the float64 run's PSNR;
  local_f32 [T]  each timestep alone in float32 from the float64 run's state before it: its final loss.
The metadata key "summary" holds the PSNRs as JSON.
"""
import argparse
import json
import math
import os
import sys

import torch
from diffusers import IFPipeline
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_inversion_fixtures import Stage, psnr  # noqa: E402
from train_tiny_cascade import PROMPTS, load_photo  # noqa: E402

F64, F32 = torch.float64, torch.float32
# The timesteps (indices in sampling order) the committed fixture keeps: the first, 2 (where float32
# runs part most from float64 on chelsea), a spread over the middle, and the last ones.
FIXTURE_STEPS = [0, 2, 12, 24, 36, 46, 49]


def nti(stage, trace, cond, null_init, guidance, inner_steps, lr):
    """make_inversion_fixtures.Stage.nti, recording every timestep."""
    null, x = null_init.clone(), trace[-1]
    xs, nulls, losses, finals = [], [], [], []
    for i, t in enumerate(stage.timesteps):
        target = trace[-2 - i]
        p = null.clone().requires_grad_(True)
        adam = torch.optim.Adam([p], lr=lr * (1 - i / 100))
        inner = []
        for _ in range(inner_steps):
            adam.zero_grad()
            loss = stage.step_loss(x, t, target, cond, p, guidance)
            inner.append(loss.item())
            loss.backward()
            adam.step()
        null = p.detach().clone()
        with torch.no_grad():
            x = stage.step(stage.guided(x, t, cond, null, guidance), t, x)
        finals.append(((x - target) ** 2).sum().item())
        xs.append(x.to(F64))
        nulls.append(null.to(F64))
        losses.append(inner)
    return torch.stack(xs), torch.stack(nulls), torch.tensor(losses, dtype=F64), torch.tensor(finals, dtype=F64)


def nti_local(stage, trace, cond, xs, nulls, null_init, guidance, inner_steps, lr):
    """Each timestep of nti alone, started from the reference run's state before it (x and null after
    the previous timestep, rounded to stage's dtype): per timestep, the final loss and the optimized
    null, free of the drift that the earlier timesteps' rounding accumulates."""
    dt = next(stage.unet.parameters()).dtype
    finals, out_nulls = [], []
    for i, t in enumerate(stage.timesteps):
        x = (trace[-1] if i == 0 else xs[i - 1]).to(dt)
        null = (null_init if i == 0 else nulls[i - 1]).to(dt)
        target = trace[-2 - i].to(dt)
        p = null.clone().requires_grad_(True)
        adam = torch.optim.Adam([p], lr=lr * (1 - i / 100))
        for _ in range(inner_steps):
            adam.zero_grad()
            stage.step_loss(x, t, target, cond.to(dt), p, guidance).backward()
            adam.step()
        with torch.no_grad():
            x = stage.step(stage.guided(x, t, cond.to(dt), p.detach(), guidance), t, x)
        finals.append(((x - target) ** 2).sum().item())
        out_nulls.append(p.detach().to(F64))
    return torch.tensor(finals, dtype=F64), torch.stack(out_nulls)


def fixture(out, steps):
    """The committed subset (tests/nti_timesteps.rs): the inputs, and for each timestep index in
    steps the state before it (x, null: the float64 run's, as float32), its target, and what float64
    and float32 PyTorch make of that timestep alone (float32's null as its error against float64's)."""
    i = torch.tensor(steps)
    n = out["x_f64"].shape[0]
    before_x = torch.stack([out["trace_f64"][-1] if k == 0 else out["x_f64"][k - 1] for k in steps])
    before_null = torch.stack([out["negative_embeds"].to(F64) if k == 0 else out["null_f64"][k - 1] for k in steps])
    return {"image": out["image"], "prompt_embeds": out["prompt_embeds"], "negative_embeds": out["negative_embeds"],
            "timesteps": out["timesteps"], "index": i.to(torch.int64),
            "x_before": before_x.float(), "null_before": before_null.float(),
            "target": torch.stack([out["trace_f64"][n - 1 - k] for k in steps]).float(),
            "final_f64": out["final_f64"][i], "null_f64": out["null_f64"][i].float(),
            "final_f32": out["local_f32"][i],
            "null_f32_error": torch.stack([max_rel(out["local_null_f32"][k], out["null_f64"][k]) for k in steps])}


def max_rel(a, b):
    """Largest |a - b| over the largest |b|."""
    return (a - b).abs().max() / b.abs().max()


def one_ulp(x, seed):
    """x moved by one ulp (up or down) in a random half of its elements."""
    g = torch.Generator().manual_seed(seed)
    pick = torch.rand(x.shape, generator=g) < 0.5
    up = torch.rand(x.shape, generator=g) < 0.5
    moved = torch.where(up, torch.nextafter(x, torch.full_like(x, math.inf)),
                        torch.nextafter(x, torch.full_like(x, -math.inf)))
    return torch.where(pick, moved, x)


class UnbatchedStage(Stage):
    """The same guidance with the unconditional and conditional passes run separately: the same
    mathematics, other GEMM shapes, so other float32 rounding."""

    def guided(self, x, t, cond, null=None, w=1.0):
        if null is None or w <= 1.0:
            return self.eps(x, t, cond)
        u, c = self.eps(x, t, null), self.eps(x, t, cond)
        return u + w * (c - u)


class ChannelsLastStage(Stage):
    """The UNet in channels-last memory format: other convolution kernels, other rounding."""

    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.unet = self.unet.to(memory_format=torch.channels_last)

    def eps(self, x, t, ctx):
        return super().eps(x.contiguous(memory_format=torch.channels_last), t, ctx)


# Float32 implementations of the same loop that round differently (--variants).
VARIANTS = {"unbatched": UnbatchedStage, "channels_last": ChannelsLastStage}


def run(pipe, image, cond, null, dtype, args, stage_class=Stage):
    stage = stage_class(pipe.unet, pipe.scheduler.config, steps=args.steps, dtype=dtype)
    x, c, n = image.to(dtype), cond.to(dtype), null.to(dtype)
    with torch.no_grad():
        trace = stage.ddim_invert(x, c)
    xs, nulls, losses, finals = nti(stage, trace, c, n, args.guidance, args.inner_steps, args.lr)
    return stage, torch.stack(trace).to(F64), xs, nulls, losses, finals


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cascade", default="tests/fixtures/trained_cascade")
    ap.add_argument("--photos", default="tests/fixtures/photos")
    ap.add_argument("--photo", default="chelsea")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--inner-steps", type=int, default=51)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--guidance", type=float, default=3.0)
    ap.add_argument("--spread", type=int, default=4, help="perturbed float32 runs")
    ap.add_argument("--first-seed", type=int, default=1000, help="the perturbations' seeds count up from it")
    ap.add_argument("--variants", action="store_true", help="also the float32 VARIANTS on the unperturbed image")
    ap.add_argument("--no-f64", action="store_true")
    ap.add_argument("--no-local", action="store_true", help="skip the per-timestep float32 runs (local_f32)")
    ap.add_argument("--out", help="everything (a few MB)")
    ap.add_argument("--fixture", help="the committed per-timestep subset (needs the float64 run)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)

    pipe = IFPipeline.from_pretrained(os.path.join(args.cascade, "stage1"))
    with torch.no_grad():
        cond, null = pipe.encode_prompt(PROMPTS[args.photo], do_classifier_free_guidance=True,
                                        negative_prompt=None, device=torch.device("cpu"), clean_caption=False)
    size = pipe.unet.config.sample_size
    image = load_photo(os.path.join(args.photos, f"{args.photo}.png"), size).float()
    image64 = image.to(F64)

    out = {"image": image, "prompt_embeds": cond.float(), "negative_embeds": null.float()}
    summary = {"photo": args.photo, "prompt": PROMPTS[args.photo], "size": size, "steps": args.steps,
               "inner_steps": args.inner_steps, "lr": args.lr, "guidance": args.guidance}
    if not args.no_f64:
        stage, trace, xs, nulls, losses, finals = run(pipe, image, cond, null, F64, args)
        out.update(trace_f64=trace, x_f64=xs, null_f64=nulls, losses_f64=losses, final_f64=finals)
        summary["psnr_f64"] = psnr(xs[-1], image64)
        out["psnr_f64"] = torch.tensor([summary["psnr_f64"]], dtype=F64)
        summary["ddim_psnr_f64"] = psnr(stage.reconstruct(trace[-1], cond.to(F64), [null.to(F64)] * args.steps,
                                                          args.guidance), image64)
        print(json.dumps(summary), flush=True)
    stage, trace, xs, nulls, losses, finals = run(pipe, image, cond, null, F32, args)
    out.update(timesteps=torch.tensor(stage.timesteps, dtype=torch.int64), trace_f32=trace,
               x_f32=xs, null_f32=nulls, losses_f32=losses, final_f32=finals)
    if not args.no_f64 and not args.no_local:
        out["local_f32"], out["local_null_f32"] = nti_local(stage, out["trace_f64"], cond, out["x_f64"], out["null_f64"], null,
                                     args.guidance, args.inner_steps, args.lr)
    spread = [psnr(xs[-1], image64)]
    print(f"float32: {spread[0]:.3f} dB", flush=True)
    moved = [one_ulp(image, args.first_seed + k) for k in range(args.spread)]
    if moved:
        out["image_ulp"] = torch.stack(moved)
    for k, image_k in enumerate(moved):
        *_, xs_k, _, _, _ = run(pipe, image_k, cond, null, F32, args)
        spread.append(psnr(xs_k[-1], image64))
        print(f"float32, image moved by one ulp (seed {args.first_seed + k}): {spread[-1]:.3f} dB", flush=True)
    out["psnr_spread"] = torch.tensor(spread, dtype=F64)
    if args.variants:
        for name, cls in VARIANTS.items():
            *_, xs_v, _, _, _ = run(pipe, image, cond, null, F32, args, cls)
            summary[f"psnr_f32_{name}"] = psnr(xs_v[-1], image64)
            out[f"psnr_f32_{name}"] = torch.tensor([summary[f"psnr_f32_{name}"]], dtype=F64)
            print(f"float32, {name}: {summary[f'psnr_f32_{name}']:.3f} dB", flush=True)
    summary["psnr_f32_spread"] = spread
    meta = {"summary": json.dumps(summary)}
    if args.out:
        save_file({k: v.contiguous() for k, v in out.items()}, args.out, metadata=meta)
    if args.fixture:
        save_file({k: v.contiguous() for k, v in fixture(out, FIXTURE_STEPS).items()}, args.fixture, metadata=meta)
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
