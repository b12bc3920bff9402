#!/usr/bin/env python3
"""Golden fixtures of the inversion loops at the x4 upscaler's latent stage (v-prediction), in
PyTorch float64, on the tiny upscaler of the fixtures (make_upscaler_fixtures.py's pipeline: UNet
sd_unet/upscaler, VAE vae/vae, DDIM v-prediction scheduler, low-res DDPM scheduler).

What the engine's latent stage must reproduce (tests/upscaler.rs):
  - `latent`: the target image's latent, vae.encode(image).latent_dist.mean * scaling_factor;
  - `condition`: the low-res image noised once at NOISE_LEVEL by the low-res scheduler;
  - `ddim_z_t`: DDIM inversion that is correct for v-prediction (x0 and eps from v at the previous
    alpha: x0 = sqrt(a) x - sqrt(1-a) v, eps = sqrt(a) v + sqrt(1-a) x; the paper's code treats v
    as eps, which is its 11.8 dB DDIM baseline);
  - `iterinv_z_t`, `iterinv_losses`: faithful IterInv (4 gradient steps a timestep, step size
    0.3 * sqrt(linspace(1, 0.5, N))) through diffusers' DDIMScheduler.step;
  - `fixed_point_z_t`, `fixed_point_losses`: 3 forward-only passes solving the v-prediction DDIM
    step z_p = a z + b v for z.
All at guidance 1 with the text embedding `cond` (upscaler_io.safetensors' `cond`), 5 steps.

Run from the repository root (after make_upscaler_fixtures.py):
    /work/venv/ref/bin/python tools/reference/make_latent_inversion_fixtures.py
"""
import json
import math
import os

import diffusers
import torch
from diffusers import AutoencoderKL, DDIMScheduler, DDPMScheduler, UNet2DConditionModel
from safetensors.torch import load_file, save_file

F64 = torch.float64
STEPS, NOISE_LEVEL = 5, 20


def main():
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    fx = os.path.join(repo, "tests", "fixtures")
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    io = load_file(os.path.join(fx, "upscaler", "upscaler_io.safetensors"))
    unet = UNet2DConditionModel.from_pretrained(os.path.join(fx, "sd_unet", "upscaler")).to(F64).eval()
    vae = AutoencoderKL.from_pretrained(os.path.join(fx, "vae", "vae")).to(F64).eval()
    for p in list(unet.parameters()) + list(vae.parameters()):
        p.requires_grad_(False)
    sched = DDIMScheduler.from_pretrained(os.path.join(fx, "upscaler", "scheduler"))
    sched.set_timesteps(STEPS)
    timesteps = [int(t) for t in sched.timesteps]
    ac = sched.alphas_cumprod.to(F64)
    ratio = sched.config.num_train_timesteps // STEPS
    noising = DDPMScheduler.from_pretrained(os.path.join(fx, "upscaler", "low_res_scheduler"))

    image = io["decoded"].clamp(-1, 1)
    g = torch.Generator().manual_seed(31)
    noise = torch.randn(io["image"].shape, generator=g, dtype=F64)
    condition = noising.add_noise(io["image"], noise, torch.tensor([NOISE_LEVEL]))
    cond = io["cond"]
    with torch.no_grad():
        latent = vae.encode(image).latent_dist.mean * vae.config.scaling_factor

    def alphas(t):
        p = t - ratio
        return float(ac[t]), (float(ac[p]) if p >= 0 else float(sched.final_alpha_cumprod))

    def v(x, t):
        inp = torch.cat([x, condition], 1)
        return unet(inp, torch.tensor(t), encoder_hidden_states=cond,
                    class_labels=torch.tensor([NOISE_LEVEL])).sample

    def step(x, t):
        return sched.step(v(x, t), t, x, eta=0.0).prev_sample

    def loss(x, t, target):
        return ((step(x, t) - target) ** 2).sum()

    with torch.no_grad():
        x = latent
        for t in reversed(timesteps):
            a_t, a_p = alphas(t)
            m = v(x, t)
            x0 = math.sqrt(a_p) * x - math.sqrt(1 - a_p) * m
            e = math.sqrt(a_p) * m + math.sqrt(1 - a_p) * x
            x = math.sqrt(a_t) * x0 + math.sqrt(1 - a_t) * e
        ddim_z_t = x

    n = len(timesteps)
    sizes = [0.3 * math.sqrt(1 - 0.5 * i / (n - 1)) for i in range(n)]
    target, it_losses = latent, []
    for i, t in enumerate(reversed(timesteps)):
        z = target.clone()
        for _ in range(4):
            zt = z.clone().requires_grad_(True)
            (grad,) = torch.autograd.grad(loss(zt, t, target), zt)
            z = z - sizes[i] * grad
        with torch.no_grad():
            it_losses.append(loss(z, t, target).item())
        target = z
    iterinv_z_t = target

    target, fp_losses = latent, []
    with torch.no_grad():
        for t in reversed(timesteps):
            a_t, a_p = alphas(t)
            sat, sbt, sap, sbp = math.sqrt(a_t), math.sqrt(1 - a_t), math.sqrt(a_p), math.sqrt(1 - a_p)
            a, b = sap * sat + sbp * sbt, sbp * sat - sap * sbt
            z = target
            for _ in range(3):
                z = (target - b * v(z, t)) / a
            fp_losses.append(loss(z, t, target).item())
            target = z
    fixed_point_z_t = target

    print(f"timesteps {timesteps}; IterInv losses {it_losses}; fixed-point losses {fp_losses}")
    out = {
        "image": image, "low_res": io["image"], "condition_noise": noise, "condition": condition,
        "cond": cond, "latent": latent, "ddim_z_t": ddim_z_t,
        "iterinv_z_t": iterinv_z_t, "iterinv_losses": torch.tensor(it_losses, dtype=F64),
        "fixed_point_z_t": fixed_point_z_t, "fixed_point_losses": torch.tensor(fp_losses, dtype=F64),
    }
    meta = {"steps": STEPS, "noise_level": NOISE_LEVEL, "iterinv": {"inner_steps": 4, "step_size": 0.3},
            "fixed_point_passes": 3, "torch": torch.__version__, "diffusers": diffusers.__version__,
            "generator": "tools/reference/make_latent_inversion_fixtures.py"}
    save_file({k: v_.to(F64).contiguous() for k, v_ in out.items()},
              os.path.join(fx, "upscaler", "latent_inversion.safetensors"),
              metadata={"fixture": json.dumps(meta, sort_keys=True)})


if __name__ == "__main__":
    main()
