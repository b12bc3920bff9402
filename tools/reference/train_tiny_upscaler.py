#!/usr/bin/env python3
"""Train a tiny Stable-Diffusion-x4-upscaler-like *latent* stage (32 px -> 128 px) for the tiny
trained cascade, for a few CPU minutes, and save it as a diffusers StableDiffusionUpscalePipeline
folder: the third stage of the built-in default cascade and the fixture on which latent-stage
inversion quality means something (random weights make every inversion method look broken).

Run from the repository root (CPU only, no network, one thread; see training_stage3.json for time):
    /work/venv/ref/bin/python tools/reference/train_tiny_upscaler.py

Writes (deletes and recreates only stage3/; stage1/, stage2/ and training.json are
train_tiny_cascade.py's and are not touched):
  tests/fixtures/trained_cascade/
    stage3/   model_index.json (max_noise_level 350), unet/ and vae/ (trained, weights stored as
              fp16 to keep the folder the binary embeds small; evaluated here as those fp16 values
              cast up, as iterinv computes with them), scheduler/ (DDIM, scaled_linear, v_prediction,
              set_alpha_to_one false, steps_offset 1: the real upscaler's), low_res_scheduler/ (DDPM,
              scaled_linear), text_encoder/ (tests/fixtures/upscaler/text_encoder: the tiny CLIP on
              the real 49,408-token vocabulary, fp16, frozen and NOT trained, like stage I's T5),
              tokenizer/ (tests/fixtures/clip_tokenizer/tokenizer)
    training_stage3.json   seeds, versions, configs, loss curves, seconds, evaluation, bytes

Data: the same six scikit-image photos, captions and held-out photos as train_tiny_cascade.py
(imported from it). Each training photo is shrunk (bicubic, antialiased) to a short side of
SHORT_SIDE = 256 px (not 128 as for stages I/II: a 128 px target must not be an upscaled crop); a
sample is a random square crop (side 50-100 % of the short side, so never below 128 px), flipped
left-right at random, resized (torch bicubic, antialiased, clamped) to 128 px (the target) and to
32 px from the same crop (the low-resolution condition, as the previous stage sees the photo).

Phase 1, the VAE (AutoencoderKL, 3 blocks: factor 4, 4 latent channels): random 64 px patches of
the 128 px crops (the VAE is convolutional; its mid attention sees 16x16 instead of 32x32 tokens),
loss = L1 + MSE of decode(sample of the posterior) + KL_WEIGHT * the KL to N(0, 1) (per element
mean). Sampling the posterior in training keeps the decoder smooth around the mean that inversion
uses. Then the latent space is rescaled (quant_conv / post_quant_conv, decode(encode(x)) unchanged) so
that the latent means of a bank of training crops times the real upscaler's scaling_factor 0.08333
(which diffusers' pipeline enforces) have unit standard deviation: the v-prediction schedule
assumes it, and iterinv's latent PSNR (data range 2) then means about what the pixel one does.

Phase 2, the UNet (UNet2DConditionModel with the real upscaler's block types: DownBlock2D +
CrossAttnDownBlock2D x2, linear projections, only_cross_attention, a class-embedding table for the
noise level): latents z0 of a bank of BANK random crops (encoded once, VAE frozen, mean x
scaling_factor), v-prediction MSE, t uniform in [0, 1000) on the DDIM config's scaled_linear
schedule; input cat[z_t, condition], condition = the 32 px crop noised once by low_res_scheduler
at level L, L also the class label. L is 100 (the level iterinv and IF use at inference) for half
of the samples and floor(351 u^2) (u uniform, weighted toward low levels, as diffusers allows at
most max_noise_level 350) for the other half, so that a few minutes train the one row that
inference reads. The class table is zero-initialised (nn.Embedding's N(0, 1) init would shift the
time embedding of rarely drawn levels by a large random vector). 10 % empty captions.
Both phases: Adam (0.9, 0.999), linear warm-up then cosine decay to 10 %, gradient clip 1.0,
float32, torch.set_num_threads(1), deterministic algorithms, fixed seeds (SEEDS).

Evaluation (printed and stored in training_stage3.json; float32 with the stored fp16 weights cast
up), per held-out photo: input = centre square crop, PIL bicubic in float mode to 128 px (the
target) and 32 px (the condition; in iterinv the condition is stage II's reconstruction, which
IterInv brings within ~40 dB of this), in [-1, 1]; the condition noised at level 100 with one fixed
draw; the photo's caption, guidance 1. 50 DDIM steps (timesteps 981, 961, ..., 1, leading spacing),
as make_latent_inversion_fixtures.py:
  vae_round_trip: decode(mean(encode(x))), clamped, vs x: the best any latent inversion can reach
  ddim:          v-prediction DDIM inversion (x0, eps from v at the previous alpha)
  fixed_point_K: K forward-only passes z <- (target - b v(z, t)) / a per step (the exact inverse
                 of the DDIM step when they converge)
  reported: latent PSNR (data range 2, scaled latents), pixel PSNR of the decoded reconstruction
  (clamped; data range 2), and the max per-step residual |DDIM_step(z) - target|.
Also: how much the UNet uses its condition (PSNR of the decoded, clamped x0 prediction at t = 700
and 900 with the real and a zero condition), and a check that StableDiffusionUpscalePipeline loads
the folder and upscales (5 steps, guidance 9, noise level 100) to finite pixels.
The record also keeps iterinv's acceptance measure (tests/trained_latent_stage.rs) separately:
that one runs the whole cascade in the engine.

Determinism: the same seeds and versions give bitwise-identical weights; training_stage3.json
differs between runs only in its timing fields.
"""
import argparse
import json
import math
import os
import shutil
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import load_file, save_file

import diffusers
import skimage
import skimage.data
import transformers
from diffusers import (AutoencoderKL, DDIMScheduler, DDPMScheduler, StableDiffusionUpscalePipeline,
                       UNet2DConditionModel)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_tiny_cascade import (CAPTIONS_PER_PHOTO, EMPTY_CAPTION_P, HELDOUT, PROMPTS, TRAIN_PHOTOS,  # noqa: E402
                                folder_bytes, load_photo, make_captions, psnr, resize, to_tensor)
from train_tiny_cascade import SEEDS as CASCADE_SEEDS  # noqa: E402

# The real upscaler's block types (../shared/spec/checkpoints/stable-diffusion-x4-upscaler.unet.json)
# on three levels instead of four, widths 8/16/24 (one resnet a level): ~190k parameters, 0.37 MB
# in fp16. Cross-attention width 20 = the tiny CLIP's hidden size.
UNET3 = dict(
    sample_size=32, in_channels=7, out_channels=4, layers_per_block=1, block_out_channels=[8, 16, 24],
    down_block_types=["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    up_block_types=["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
    mid_block_type="UNetMidBlock2DCrossAttn", attention_head_dim=[2, 2, 4], cross_attention_dim=20,
    use_linear_projection=True, only_cross_attention=[True, True, False], num_class_embeds=351,
    act_fn="silu", norm_num_groups=4, norm_eps=1e-5, upcast_attention=False,
)
# The real VAE's block types, widths 8/16/16 (real 128/256/512), one resnet a level.
VAE3 = dict(
    in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * 3,
    up_block_types=["UpDecoderBlock2D"] * 3, block_out_channels=[8, 16, 16], layers_per_block=1,
    latent_channels=4, norm_num_groups=4, sample_size=128, scaling_factor=0.08333,
)
SCALING_FACTOR = 0.08333  # the real upscaler's, which diffusers' pipeline enforces
SCHED = dict(beta_schedule="scaled_linear", beta_start=0.0001, beta_end=0.02, prediction_type="v_prediction",
             set_alpha_to_one=False, steps_offset=1, clip_sample=False, num_train_timesteps=1000)
LOW_RES = dict(beta_schedule="scaled_linear", beta_start=0.0001, beta_end=0.02, clip_sample=False,
               num_train_timesteps=1000)
MAX_NOISE_LEVEL = 350

SEEDS = {"vae": 30, "unet": 31, "vae_data": 32, "bank": 33, "unet_data": 34, "eval": 35, "sample": 36,
         "captions": CASCADE_SEEDS["captions"]}
STEPS = {"vae": 800, "unet": 1200}
BATCH = {"vae": 16, "unet": 16}
LR = {"vae": 2e-3, "unet": 2e-3}
WARMUP = 100
GRAD_CLIP = 1.0
KL_WEIGHT = 1e-4
VAE_PATCH = 64
BANK = 2048
SHORT_SIDE = 256
CROP_MIN = 0.5
SIZE = 128
LOW = 32
NOISE_LEVEL = 100
LEVEL_P_INFERENCE = 0.5
LEVEL_POWER = 2.0
INV_STEPS = 50
FIXED_POINT_PASSES = (10,)
SIZE_BUDGET = 4_300_000  # stage3/ in bytes; 3.47 MB of it are the CLIP encoder and tokenizer


def load_train_photos():
    photos = {}
    for name in TRAIN_PHOTOS:
        img = getattr(skimage.data, name)()
        img = img[0] if isinstance(img, tuple) else img  # stereo_motorcycle: (left, right, disparity)
        x = to_tensor(img)[None]
        h, w = x.shape[-2:]
        s = SHORT_SIDE / min(h, w)
        photos[name] = resize(x, (round(h * s), round(w * s)))[0]
    return photos


def random_crops(g, photos, n, caption_embeds=None, empty=None):
    """n random crops at SIZE and LOW px (the same crop), and their caption embeddings."""
    names = sorted(photos)
    big, low, embs = [], [], []
    for _ in range(n):
        name = names[torch.randint(len(names), (1,), generator=g).item()]
        x = photos[name]
        h, w = x.shape[-2:]
        m = min(h, w)
        side = int(m * (CROP_MIN + (1 - CROP_MIN) * torch.rand((), generator=g).item()))
        top = torch.randint(h - side + 1, (1,), generator=g).item()
        left = torch.randint(w - side + 1, (1,), generator=g).item()
        crop = x[None, :, top:top + side, left:left + side]
        if torch.rand((), generator=g).item() < 0.5:
            crop = crop.flip(-1)
        big.append(resize(crop, (SIZE, SIZE)))
        low.append(resize(crop, (LOW, LOW)))
        if caption_embeds is not None:
            if torch.rand((), generator=g).item() < EMPTY_CAPTION_P:
                embs.append(empty)
            else:
                bank = caption_embeds[name]
                embs.append(bank[torch.randint(len(bank), (1,), generator=g).item()][None])
    return torch.cat(big), torch.cat(low), (torch.cat(embs) if embs else None)


def lr_at(step, total, lr):
    if step < WARMUP:
        return lr * (step + 1) / WARMUP
    p = (step - WARMUP) / max(1, total - WARMUP)
    return lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * p)))


def run_steps(phase, model, step_fn):
    """The shared optimisation loop; step_fn(step) returns (loss, logged values)."""
    opt = torch.optim.Adam(model.parameters(), lr=LR[phase])
    total, curve, acc, t0 = STEPS[phase], [], [], time.time()
    model.train()
    for step in range(total):
        for grp in opt.param_groups:
            grp["lr"] = lr_at(step, total, LR[phase])
        loss, logged = step_fn(step)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gn = torch.nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
        opt.step()
        acc.append({**logged, "grad_norm": gn.item()})
        if (step + 1) % max(1, total // 10) == 0:
            row = {k: float(np.mean([a[k] for a in acc])) for k in acc[0] if k != "grad_norm"}
            row.update(step=step + 1, grad_norm_median=float(np.median([a["grad_norm"] for a in acc])),
                       seconds=round(time.time() - t0, 1))
            curve.append(row)
            print(f"    {phase} step {step + 1:5d}/{total}  " + "  ".join(
                f"{k} {v:.4f}" for k, v in row.items() if k not in ("step", "seconds")) +
                f"  {time.time() - t0:.0f} s", flush=True)
            acc = []
    model.eval()
    return curve, time.time() - t0


def train_vae(vae, photos):
    g = torch.Generator().manual_seed(SEEDS["vae_data"])

    def step(_):
        x, _, _ = random_crops(g, photos, BATCH["vae"])
        top = torch.randint(SIZE - VAE_PATCH + 1, (1,), generator=g).item()
        left = torch.randint(SIZE - VAE_PATCH + 1, (1,), generator=g).item()
        x = x[:, :, top:top + VAE_PATCH, left:left + VAE_PATCH]
        post = vae.encode(x).latent_dist
        z = post.mean + post.std * torch.randn(post.mean.shape, generator=g)
        rec = vae.decode(z).sample
        l1, l2 = (rec - x).abs().mean(), (rec - x).pow(2).mean()
        kl = 0.5 * (post.mean.pow(2) + post.var - 1 - post.logvar).mean()
        return l1 + l2 + KL_WEIGHT * kl, {"l1": l1.item(), "mse": l2.item(), "kl": kl.item()}

    return run_steps("vae", vae, step)


def train_unet(unet, sched, noising, bank):
    z0s, lows, embs = bank
    g = torch.Generator().manual_seed(SEEDS["unet_data"])
    acp = sched.alphas_cumprod

    def step(_):
        b = BATCH["unet"]
        idx = torch.randint(len(z0s), (b,), generator=g)
        z0, low, emb = z0s[idx], lows[idx], embs[idx]
        noise = torch.randn(z0.shape, generator=g)
        t = torch.randint(0, 1000, (b,), generator=g)
        a = acp[t].view(-1, 1, 1, 1)
        z_t = a.sqrt() * z0 + (1 - a).sqrt() * noise
        v = a.sqrt() * noise - (1 - a).sqrt() * z0
        u = torch.rand(b, generator=g, dtype=torch.float64)
        random_level = (UNET3["num_class_embeds"] * torch.rand(b, generator=g, dtype=torch.float64)
                        ** LEVEL_POWER).long().clamp(max=MAX_NOISE_LEVEL)
        level = torch.where(u < LEVEL_P_INFERENCE, torch.full_like(random_level, NOISE_LEVEL), random_level)
        cond = noising.add_noise(low, torch.randn(low.shape, generator=g), level)
        out = unet(torch.cat([z_t, cond], 1), t, encoder_hidden_states=emb, class_labels=level).sample
        mse = (out - v).pow(2).mean()
        return mse, {"v_mse": mse.item()}

    return run_steps("unet", unet, step)


@torch.no_grad()
def latent_bank(vae, photos, caption_embeds, empty):
    g = torch.Generator().manual_seed(SEEDS["bank"])
    big, low, emb = random_crops(g, photos, BANK, caption_embeds, empty)
    means = torch.cat([vae.encode(big[i:i + 64]).latent_dist.mean for i in range(0, BANK, 64)])
    return means, low, emb


@torch.no_grad()
def rescale_latent_(vae, c):
    """Multiply the VAE's latent space by c without changing decode(encode(x)): the mean rows of
    quant_conv (a 1x1 conv) by c, the log-variance rows' bias by 2 log c, post_quant_conv's input
    weights by 1/c. diffusers' StableDiffusionUpscalePipeline resets any scaling_factor but 0.08333
    (the real upscaler's), so the latent's scale is set here, as the real VAE's latents (std about
    12) are."""
    n = vae.config.latent_channels
    vae.quant_conv.weight[:n] *= c
    vae.quant_conv.bias[:n] *= c
    vae.quant_conv.bias[n:] += 2 * math.log(c)
    vae.post_quant_conv.weight /= c


def round_fp16_(model):
    """The weights as stored (fp16) and as iterinv computes with them (cast up to f32)."""
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.half().float())


def save_fp16(model, folder):
    model.save_pretrained(folder)
    path = os.path.join(folder, "diffusion_pytorch_model.safetensors")
    save_file({k: v.half() for k, v in load_file(path).items()}, path, metadata={"format": "pt"})


def save_folder(out, fixtures, unet, vae):
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    DDIMScheduler(**SCHED).save_pretrained(os.path.join(out, "scheduler"))
    DDPMScheduler(**LOW_RES).save_pretrained(os.path.join(out, "low_res_scheduler"))
    shutil.copytree(os.path.join(fixtures, "upscaler", "text_encoder"), os.path.join(out, "text_encoder"))
    shutil.copytree(os.path.join(fixtures, "clip_tokenizer", "tokenizer"), os.path.join(out, "tokenizer"))
    save_fp16(unet, os.path.join(out, "unet"))
    save_fp16(vae, os.path.join(out, "vae"))
    index = {"_class_name": "StableDiffusionUpscalePipeline", "_diffusers_version": diffusers.__version__,
             "max_noise_level": MAX_NOISE_LEVEL,
             "low_res_scheduler": ["diffusers", "DDPMScheduler"], "scheduler": ["diffusers", "DDIMScheduler"],
             "text_encoder": ["transformers", "CLIPTextModel"], "tokenizer": ["transformers", "CLIPTokenizer"],
             "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"]}
    with open(os.path.join(out, "model_index.json"), "w") as f:
        json.dump(index, f, indent=2, sort_keys=True)
        f.write("\n")


def load_pipe(out):
    pipe = StableDiffusionUpscalePipeline.from_pretrained(out, torch_dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    pipe.text_encoder.requires_grad_(False)
    return pipe


@torch.no_grad()
def encode(pipe, texts):
    embeds, _ = pipe.encode_prompt(texts, torch.device("cpu"), 1, False)
    return embeds.float()


# ---------------------------------------------------------------- evaluation


class LatentDenoiser:
    """v(z, t) of the latent stage at guidance 1 under a fixed noised condition."""

    def __init__(self, unet, acp, emb, cond):
        self.unet, self.acp, self.emb, self.cond = unet, acp, emb, cond

    @torch.no_grad()
    def v(self, z, t, cond=None):
        cond = self.cond if cond is None else cond
        return self.unet(torch.cat([z, cond], 1), torch.tensor([t]), encoder_hidden_states=self.emb,
                         class_labels=torch.tensor([NOISE_LEVEL])).sample

    def alphas(self, t, ratio):
        p = t - ratio
        return self.acp[t].double().item(), (self.acp[p].double().item() if p >= 0 else self.acp[0].double().item())


def ddim_step(d, z, t, ratio):
    a_t, a_p = d.alphas(t, ratio)
    v = d.v(z, t)
    x0 = a_t ** 0.5 * z - (1 - a_t) ** 0.5 * v
    eps = a_t ** 0.5 * v + (1 - a_t) ** 0.5 * z
    return a_p ** 0.5 * x0 + (1 - a_p) ** 0.5 * eps


def invert(d, z, timesteps, ratio, passes):
    resid = []
    for t in reversed(timesteps):
        a_t, a_p = d.alphas(t, ratio)
        sat, sbt, sap, sbp = a_t ** 0.5, (1 - a_t) ** 0.5, a_p ** 0.5, (1 - a_p) ** 0.5
        if passes is None:  # DDIM inversion: v of the less noisy sample, at the previous alpha
            v = d.v(z, t)
            x0, eps = sap * z - sbp * v, sap * v + sbp * z
            nxt = sat * x0 + sbt * eps
        else:
            a, b = sap * sat + sbp * sbt, sbp * sat - sap * sbt
            nxt = z
            for _ in range(passes):
                nxt = (z - b * d.v(nxt, t)) / a
        resid.append((ddim_step(d, nxt, t, ratio) - z).abs().max().item())
        z = nxt
    return z, resid


def reconstruct(d, z, timesteps, ratio):
    for t in timesteps:
        z = ddim_step(d, z, t, ratio)
    return z


@torch.no_grad()
def evaluate(photos_dir, pipe, sched, noising):
    unet, vae = pipe.unet, pipe.vae
    sf = vae.config.scaling_factor
    sched.set_timesteps(INV_STEPS)
    timesteps = [int(t) for t in sched.timesteps]
    ratio = 1000 // INV_STEPS
    results = {}
    for name in HELDOUT:
        path = os.path.join(photos_dir, f"{name}.png")
        x, low = load_photo(path, SIZE), load_photo(path, LOW)
        g = torch.Generator().manual_seed(SEEDS["eval"])
        cond = noising.add_noise(low, torch.randn(low.shape, generator=g), torch.tensor([NOISE_LEVEL]))
        d = LatentDenoiser(unet, sched.alphas_cumprod, encode(pipe, [PROMPTS[name]]), cond)
        z0 = vae.encode(x).latent_dist.mean * sf
        decode = lambda z: vae.decode(z / sf).sample.clamp(-1, 1)  # noqa: E731
        row = {"vae_round_trip_psnr": round(psnr(decode(z0), x), 2), "latent_std": round(z0.std().item(), 4)}
        for method, passes in [("ddim", None)] + [(f"fixed_point_{k}", k) for k in FIXED_POINT_PASSES]:
            t0 = time.time()
            z_T, resid = invert(d, z0, timesteps, ratio, passes)
            rec = reconstruct(d, z_T, timesteps, ratio)
            row[method] = {"latent_psnr": round(psnr(rec, z0), 2), "psnr": round(psnr(decode(rec), x), 2),
                           "max_step_residual": float(f"{max(resid):.3g}"), "x_T_std": round(z_T.std().item(), 4),
                           "seconds": round(time.time() - t0, 2)}
        use = {}
        for t in (900, 700):
            a = sched.alphas_cumprod[t].double().item()
            z_t = a ** 0.5 * z0 + (1 - a) ** 0.5 * torch.randn(z0.shape, generator=g)
            for tag, c in (("cond", cond), ("zero_cond", torch.zeros_like(cond))):
                x0 = a ** 0.5 * z_t - (1 - a) ** 0.5 * d.v(z_t, t, c)
                use[f"x0_t{t}_{tag}"] = round(psnr(decode(x0), x), 2)
        row["condition_use"] = use
        results[name] = {"prompt": PROMPTS[name], **row}
        print(f"    {name:8s} round trip {row['vae_round_trip_psnr']:.2f} dB, latent std {row['latent_std']}; " +
              "  ".join(f"{m} {row[m]['psnr']:.2f} dB (latent {row[m]['latent_psnr']:.2f}, resid "
                        f"{row[m]['max_step_residual']:.1e})" for m in ["ddim"] +
                        [f"fixed_point_{k}" for k in FIXED_POINT_PASSES]) + f"; {use}", flush=True)
    return results


@torch.no_grad()
def sample_check(pipe):
    g = torch.Generator().manual_seed(SEEDS["sample"])
    low = (torch.rand(1, 3, LOW, LOW, generator=g) * 2 - 1)
    img = pipe(prompt=PROMPTS["chelsea"], image=low, num_inference_steps=5, guidance_scale=9.0,
               noise_level=NOISE_LEVEL, generator=g, output_type="pt").images
    assert torch.isfinite(img).all() and list(img.shape) == [1, 3, SIZE, SIZE], img.shape
    return {"steps": 5, "guidance": 9.0, "shape": list(img.shape),
            "min_max": [round(img.min().item(), 4), round(img.max().item(), 4)]}


def main():
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    fixtures = os.path.join(repo, "tests", "fixtures")
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(fixtures, "trained_cascade"))
    ap.add_argument("--photos", default=os.path.join(fixtures, "photos"))
    ap.add_argument("--steps", type=int, nargs=2, default=None, metavar=("VAE", "UNET"),
                    help="override the training steps (smoke tests; the committed fixture uses the defaults)")
    args = ap.parse_args()
    if args.steps:
        STEPS.update(vae=args.steps[0], unet=args.steps[1])
    stage3 = os.path.join(args.out, "stage3")

    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.disable_progress_bar()
    versions = {"torch": torch.__version__, "diffusers": diffusers.__version__,
                "transformers": transformers.__version__, "scikit-image": skimage.__version__,
                "numpy": np.__version__, "pillow": Image.__version__, "python": sys.version.split()[0]}
    print("    " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    t_start = time.time()

    torch.manual_seed(SEEDS["vae"])
    vae = AutoencoderKL(**VAE3)
    torch.manual_seed(SEEDS["unet"])
    unet = UNet2DConditionModel(**UNET3)
    with torch.no_grad():
        unet.class_embedding.weight.zero_()
    # The untrained folder gives the frozen CLIP encoder and tokenizer exactly as saved.
    save_folder(stage3, fixtures, unet, vae)
    pipe = load_pipe(stage3)
    captions = make_captions(torch.Generator().manual_seed(SEEDS["captions"]))
    caption_embeds = {n: encode(pipe, c) for n, c in captions.items()}
    empty = encode(pipe, [""])
    photos = load_train_photos()
    params = {"unet": sum(p.numel() for p in unet.parameters()), "vae": sum(p.numel() for p in vae.parameters())}
    print(f"    params {params}; {len(photos)} training photos {[tuple(p.shape[1:]) for p in photos.values()]}")

    log = {}
    print("== train the VAE", flush=True)
    curve, secs = train_vae(vae, photos)
    log["vae"] = {"steps": STEPS["vae"], "seconds": round(secs, 1), "curve": curve}
    vae.requires_grad_(False)
    t0 = time.time()
    means, lows, embs = latent_bank(vae, photos, caption_embeds, empty)
    c = 1.0 / (SCALING_FACTOR * means.std().item())
    rescale_latent_(vae, c)
    round_fp16_(vae)
    trained_std = means.std().item()
    means, _, _ = latent_bank(vae, photos, caption_embeds, empty)
    sf = SCALING_FACTOR
    log["latent_bank"] = {"crops": BANK, "trained_std": trained_std, "rescaled_by": c,
                          "scaled_std": means.std().item() * sf, "scaled_mean": means.mean().item() * sf,
                          "seconds": round(time.time() - t0, 1)}
    print(f"    latent bank: {BANK} crops, latent std {trained_std:.4f} rescaled by {c:.4f}: scaled latents "
          f"std {means.std().item() * sf:.4f}, mean {means.mean().item() * sf:.4f}")

    print("== train the UNet", flush=True)
    sched, noising = DDIMScheduler(**SCHED), DDPMScheduler(**LOW_RES)
    curve, secs = train_unet(unet, sched, noising, (means * sf, lows, embs))
    log["unet"] = {"steps": STEPS["unet"], "seconds": round(secs, 1), "curve": curve}
    round_fp16_(unet)
    train_seconds = time.time() - t_start

    print("== save", flush=True)
    save_folder(stage3, fixtures, unet, vae)
    pipe = load_pipe(stage3)
    for a, b in ((pipe.unet, unet), (pipe.vae, vae)):
        assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters())), "saved != trained"
    assert pipe.vae.config.scaling_factor == sf

    print(f"== evaluate (held-out photos, {INV_STEPS} steps, guidance 1, noise level {NOISE_LEVEL})", flush=True)
    evaluation = evaluate(args.photos, pipe, DDIMScheduler(**SCHED), noising)
    sampling = sample_check(pipe)

    size = folder_bytes(stage3)
    record = {
        "generator": "tools/reference/train_tiny_upscaler.py", "versions": versions, "seeds": SEEDS,
        "data": {"train_photos": sorted(TRAIN_PHOTOS), "heldout_photos": list(HELDOUT), "short_side": SHORT_SIDE,
                 "crop_min": CROP_MIN, "size": SIZE, "low_res": LOW, "captions_per_photo": CAPTIONS_PER_PHOTO,
                 "empty_caption_p": EMPTY_CAPTION_P, "vae_patch": VAE_PATCH, "latent_bank": BANK},
        "optim": {"batch": BATCH, "lr": LR, "warmup": WARMUP, "schedule": "cosine to 10%", "clip": GRAD_CLIP,
                  "vae_loss": "L1 + MSE of decode(posterior sample) + kl_weight * mean KL to N(0, 1)",
                  "kl_weight": KL_WEIGHT, "unet_loss": "MSE(v), t uniform",
                  "noise_levels": f"{NOISE_LEVEL} with p {LEVEL_P_INFERENCE}, else floor(351 u^{LEVEL_POWER})",
                  "threads": 1, "stored_dtype": "float16 (unet, vae, text_encoder)"},
        "configs": {"unet": UNET3, "vae": VAE3, "scheduler": SCHED,
                    "low_res_scheduler": LOW_RES},
        "params": params, "training": log, "seconds_total": round(train_seconds, 1),
        "evaluation": {"inversion_steps": INV_STEPS, "guidance": 1.0, "noise_level": NOISE_LEVEL,
                       "psnr": "data range 2 on [-1, 1]; latents scaled", "dtype": "float32 (fp16 weights)",
                       "photos": evaluation},
        "pipeline_check": sampling, "bytes": {"stage3": size},
        "note": "weights are bitwise reproducible with the same versions; 'seconds' fields vary",
    }
    with open(os.path.join(args.out, "training_stage3.json"), "w") as f:
        json.dump(record, f, indent=1, sort_keys=True)
        f.write("\n")
    print("== files")
    for root, dirs, files in os.walk(stage3):
        dirs.sort()
        for fn in sorted(files):
            p = os.path.join(root, fn)
            print(f"    {os.path.getsize(p):>9,}  {os.path.relpath(p, stage3)}")
    print(f"    {size:>9,}  total stage3/; trained {train_seconds:.0f} s")
    assert size < SIZE_BUDGET, f"stage3/ is {size:,} bytes, over {SIZE_BUDGET:,}"


if __name__ == "__main__":
    main()
