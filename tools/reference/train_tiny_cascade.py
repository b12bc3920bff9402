#!/usr/bin/env python3
"""Train a tiny DeepFloyd-IF-like cascade on public sample photos, for a few CPU minutes, and save it
as diffusers pipeline folders: the test fixture (and the CLI's built-in default cascade) on which
inversion quality means something. Random weights make every inversion method look broken
(../shared/spec/method.md); a briefly trained denoiser has the Jacobian structure of a real one.

Run from the repository root (CPU only, no network, about 12 minutes with one thread):
    /work/venv/ref/bin/python tools/reference/train_tiny_cascade.py

Writes (deletes and recreates both folders):
  tests/fixtures/trained_cascade/
    stage1/   IFPipeline folder laid out exactly like tests/fixtures/cascade/stage1 (see
              make_cascade_fixtures.py): model_index.json, unet/, scheduler/ (IF-I's DDPM config),
              text_encoder/ (the tiny T5 fixture, frozen, not trained), tokenizer/ (spiece.model +
              tokenizer_config.json)
    stage2/   IFSuperResolutionPipeline folder like tests/fixtures/cascade/stage2: model_index.json,
              unet/, scheduler/, image_noising_scheduler/ (text encoder and tokenizer null: stage II
              takes stage I's prompt embeddings)
    training.json   steps, seeds, versions, loss curves, seconds, configs, and the evaluation below
  tests/fixtures/photos/   held-out photos (never seen in training), PNG:
    chelsea.png (RGB cat, 128x192), coffee.png (RGB, 128x192), camera.png (greyscale "L", 128x128);
    128 px short sides so that the latent third stage (train_tiny_upscaler.py, 128 px) can invert
    them too. (The photos are not read by training: changing their size, from 96 px until the
    third stage came, left the weights bit for bit; training.json's evaluation predates it.)

Data: scikit-image's bundled sample photos (skimage.data, shipped inside the wheel). Training uses the
RGB photos astronaut, rocket, immunohistochemistry, hubble_deep_field, retina and stereo_motorcycle
(left view); chelsea, coffee and camera are held out. Each photo is first shrunk (bicubic,
antialiased) to a short side of 128 px; a sample is a random square crop (side 35-100 % of the short
side), randomly flipped left-right, resized (torch bicubic, antialiased, clamped to [-1, 1]) to 16 px
(stage I) or to 32 px plus 16 px from the same crop (stage II).

Captions: templates filled from a small word list with the photo's subject words ("a photo of a
rocket", "a blurry picture of the galaxies, close-up", ...), 32 per photo, encoded once by the frozen
tiny T5 through IFPipeline.encode_prompt (77 tokens, clean_caption False); 10 % of samples get the
embedding of "" (what IF uses as the unconditional/negative embedding), so guidance has something to
work with.

Objective (both stages): DDPM with IF's scheduler (squaredcos_cap_v2, 1000 steps), t uniform in
[0, 1000). Loss = weighted MSE(out[:, :3], eps) + L_vb.
- eps weight w(t) = min(1/alphas_cumprod[t], EPS_WEIGHT_CAP), normalised over the batch: with plain
  uniform weights a few CPU minutes do not teach the super-resolution UNet to use its condition
  (its x0 at high t is what the condition carries, and that is only sqrt(a_t) of eps there); the cap
  keeps the low-t terms in play. 1/a_t is the weighting that turns eps-MSE into v-MSE.
- L_vb: the improved-DDPM hybrid term for the learned_range variance channels out[:, 3:]:
  KL(q(x_{t-1}|x_t, x_0) || p(x_{t-1}|x_t)) in bits per dimension, with p's mean computed from the
  DETACHED eps (so the term trains only the variance) and p's log-variance
  frac*log(beta_t) + (1-frac)*log(posterior variance), frac = (v+1)/2, as diffusers'
  DDPMScheduler._get_variance reads it. Terms with t = 0 are dropped (the sampler adds no noise at
  t = 0, so that variance is never used). Inversion uses only eps; the variance matters only for
  DDPM sampling.
Stage II: the 16 px crop is upscaled bilinearly (align_corners=True, as IFSuperResolutionPipeline
does), noised by the image_noising_scheduler at a random level in [0, 1000) that is also the class
label, and concatenated to x_t (6 channels). Levels are drawn as floor(1000 u^LEVEL_POWER), u uniform:
every level occurs, low ones (inference uses 250) more often, so the short run learns to use a
useful condition. Adam (betas 0.9/0.999), lr LR with linear warm-up and cosine decay to 10 %,
gradient clip 1.0, batch 16, float32, torch.set_num_threads(1), deterministic algorithms, fixed
seeds (SEEDS).

Evaluation (printed and stored in training.json), float32 like the saved weights, per held-out photo:
input = centre square crop, PIL bicubic (antialiased, float "F" mode, as iterinv's image loader and
make_image_fixtures.py do) to 16 px (stage I) and 32 px (stage II), in [-1, 1]; prompt = the photo's
caption (PROMPTS), guidance 1 (conditional only); stage II condition = the 16 px input upscaled and
noised at level 250 with one fixed noise draw (the same for inversion and reconstruction). 50 steps,
timesteps 0, 20, ..., 980 (inversion) and back. method.md's inverse step:
x0p = (x - sqrt(1-a_t) eps)/sqrt(a_t), x' = sqrt(a_next) x0p + sqrt(1-a_next) eps with
a_t = alphas_cumprod[t-20] (1.0 when t-20 < 0), a_next = alphas_cumprod[t], eps = out[:, :3].
  ddim:        eps = eps(x, t) of the current, less noisy sample (plain DDIM inversion)
  fixed-point: start from the DDIM estimate, then K passes x' <- inverse step with eps(x', t), i.e. the
               x' that the DDIM step maps back onto x exactly (K = 3 and 10)
Reconstruction: plain DDIM (eta 0) from x_T with the same eps, no thresholding (the exact inverse);
also once with IF's dynamic thresholding (ratio 0.95, max 1.5 / 1.0) as the pipelines would run it.
PSNR with data range 2 on [-1, 1] (= range 1 on [0, 1], as iterinv's metrics) against the input.
Also recorded: how well stage II uses its condition (PSNR of its clamped x0 prediction at t = 900,
700, 500 with the real condition and with a zero condition, against the 32 px input; the upscaled
16 px input alone for comparison), and a deterministic DDIM sample (50 steps, guidance 1, IF's
thresholding) from seeded noise given the condition.
Finally both pipelines are loaded back with from_pretrained and sample text-to-image (10 DDPM steps,
guidance 7 / 4, noise level 250); the outputs must be finite.

Determinism: the same seeds and versions give bitwise-identical weights (one CPU thread,
torch.use_deterministic_algorithms); training.json differs between runs only in its timing fields.
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

import diffusers
import skimage
import skimage.data
import transformers
from diffusers import DDPMScheduler, IFPipeline, IFSuperResolutionPipeline, UNet2DConditionModel

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_cascade_fixtures import NOISING2, SCHED1, SCHED2, UNET1, UNET2, save_if_folders  # noqa: E402

# Same block types and IF fields as the cascade fixture (make_cascade_fixtures.py), sized so that
# stage1/ (with the 0.86 MB T5 + spiece.model) and stage2/ each stay under 2 MB in float32.
# norm_num_groups 8: 2-4 channels per group at these widths (the real IF uses 32 groups of >= 22).
TINY1 = dict(UNET1, block_out_channels=[16, 32], norm_num_groups=8)
TINY2 = dict(UNET2, block_out_channels=[16, 32, 32], layers_per_block=[1, 1, 1], norm_num_groups=8)

TRAIN_PHOTOS = {  # skimage.data name -> subject words for the captions
    "astronaut": ["astronaut", "woman", "space suit", "person"],
    "rocket": ["rocket", "launch pad", "spacecraft"],
    "immunohistochemistry": ["cells", "microscope slide", "tissue"],
    "hubble_deep_field": ["galaxies", "night sky", "stars"],
    "retina": ["retina", "eye", "fundus"],
    "stereo_motorcycle": ["motorcycle", "bike", "garage"],
}
HELDOUT = {"chelsea": ("RGB", 128), "coffee": ("RGB", 128), "camera": ("L", 128)}  # mode, short side
PROMPTS = {"chelsea": "a photo of a cat", "coffee": "a cup of coffee", "camera": "a photo of a man with a camera"}
TEMPLATES = ["a photo of a {w}", "a {a} photo of a {w}", "a picture of the {w}, {a}", "{w}", "the {w}",
             "a {a} image of {w}", "{a} {w}"]
ADJECTIVES = ["close-up", "blurry", "bright", "dark", "colorful", "old", "small", "large", "sharp", "detailed"]
CAPTIONS_PER_PHOTO = 32
EMPTY_CAPTION_P = 0.1

SEEDS = {"unet1": 10, "unet2": 11, "captions": 1, "data1": 2, "data2": 3, "eval": 4, "sample": 5}
STEPS = {"stage1": 2400, "stage2": 1000}
BATCH = 16
LR = 2e-3
WARMUP = 100
EPS_WEIGHT_CAP = 100.0
VB_WEIGHT = 1.0
GRAD_CLIP = 1.0
LEVEL_POWER = 2.0
SHORT_SIDE = 128
CROP_MIN = 0.35
INV_STEPS = 50
NOISE_LEVEL = 250
FIXED_POINT_PASSES = (3, 10)
SIZE_BUDGET = {"stage1": 2_000_000, "stage2": 2_000_000, "total": 5_000_000, "photos": 200_000}


def to_tensor(img):
    """uint8 HxW or HxWxC -> float32 [3, H, W] in [-1, 1] (grey replicated)."""
    a = torch.from_numpy(np.array(img)).float() / 127.5 - 1.0
    if a.ndim == 2:
        a = a[..., None].expand(*a.shape, 3)
    return a[..., :3].permute(2, 0, 1).contiguous()


def resize(x, size):
    """[N, 3, h, w] -> [N, 3, size] bicubic, antialiased, clamped (bicubic overshoots)."""
    return F.interpolate(x, size, mode="bicubic", antialias=True, align_corners=False).clamp(-1, 1)


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


def save_heldout(out_dir):
    """The held-out photos as small PNGs (PIL Lanczos to the given short side, aspect kept)."""
    shutil.rmtree(out_dir, ignore_errors=True)
    os.makedirs(out_dir)
    for name, (mode, short) in HELDOUT.items():
        img = Image.fromarray(getattr(skimage.data, name)()).convert(mode)
        w, h = img.size
        s = short / min(w, h)
        img = img.resize((round(w * s), round(h * s)), Image.LANCZOS)
        img.save(os.path.join(out_dir, f"{name}.png"), optimize=True)


def load_photo(path, size):
    """Evaluation input as iterinv loads it: RGB in [0, 1], centre square crop, PIL bicubic per
    channel in float mode, then [-1, 1]; [1, 3, size, size] float32."""
    rgb = np.asarray(Image.open(path).convert("RGB"), dtype=np.float64) / 255.0
    h, w, _ = rgb.shape
    s = min(h, w)
    crop = rgb[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]
    chans = [np.asarray(Image.fromarray(crop[:, :, c].astype(np.float32), mode="F").resize(
        (size, size), Image.BICUBIC), dtype=np.float32) for c in range(3)]
    return torch.from_numpy(np.stack(chans)[None] * 2 - 1)


def make_captions(g):
    caps = {}
    for name, words in TRAIN_PHOTOS.items():
        caps[name] = []
        for _ in range(CAPTIONS_PER_PHOTO):
            t = TEMPLATES[torch.randint(len(TEMPLATES), (1,), generator=g).item()]
            w = words[torch.randint(len(words), (1,), generator=g).item()]
            a = ADJECTIVES[torch.randint(len(ADJECTIVES), (1,), generator=g).item()]
            caps[name].append(t.format(w=w, a=a))
    return caps


@torch.no_grad()
def encode(pipe, texts):
    embeds, _ = pipe.encode_prompt(texts, do_classifier_free_guidance=False, device=torch.device("cpu"),
                                   clean_caption=False)
    return embeds.float()


def random_batch(g, photos, names, caption_embeds, empty, sizes):
    """BATCH random crops (one list per size, same crops) and their caption embeddings."""
    outs = [[] for _ in sizes]
    embs = []
    for _ in range(BATCH):
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
        for o, s in zip(outs, sizes):
            o.append(resize(crop, (s, s)))
        if torch.rand((), generator=g).item() < EMPTY_CAPTION_P:
            embs.append(empty)
        else:
            bank = caption_embeds[name]
            embs.append(bank[torch.randint(len(bank), (1,), generator=g).item()][None])
    return [torch.cat(o) for o in outs], torch.cat(embs)


def posterior(sched, t):
    """Per-sample coefficients of q(x_{t-1} | x_t, x_0), as DDPMScheduler.step computes them."""
    acp = sched.alphas_cumprod
    a_t = acp[t].view(-1, 1, 1, 1)
    a_p = torch.where(t > 0, acp[(t - 1).clamp(min=0)], torch.ones_like(a_t.view(-1))).view(-1, 1, 1, 1)
    beta = 1 - a_t / a_p
    post = ((1 - a_p) / (1 - a_t) * beta).clamp(min=1e-20)
    c_x0 = a_p.sqrt() * beta / (1 - a_t)
    c_xt = (a_t / a_p).sqrt() * (1 - a_p) / (1 - a_t)
    return c_x0, c_xt, a_t, beta, post


def hybrid_loss(sched, out, x0, x_t, t, noise):
    """Weighted MSE on eps + KL(q(x_{t-1}|x_t,x_0) || p(x_{t-1}|x_t)) in bits/dim, p's mean from the
    detached eps so that the KL trains only the variance channels."""
    eps, v = out[:, :3], out[:, 3:]
    c_x0, c_xt, a_t, beta, post = posterior(sched, t)
    w = (1 / a_t.view(-1)).clamp(max=EPS_WEIGHT_CAP)
    per = (eps - noise).pow(2).mean(dim=(1, 2, 3))
    mse = (w * per).sum() / w.sum()
    x0_pred = (x_t - (1 - a_t).sqrt() * eps.detach()) / a_t.sqrt()
    mean_p = c_x0 * x0_pred + c_xt * x_t
    mean_q = c_x0 * x0 + c_xt * x_t
    frac = (v + 1) / 2
    logvar_p = frac * beta.log() + (1 - frac) * post.log()
    logvar_q = post.log()
    kl = 0.5 * (-1 + logvar_p - logvar_q + (logvar_q - logvar_p).exp() + (mean_q - mean_p) ** 2 * (-logvar_p).exp())
    kl = kl.mean(dim=(1, 2, 3)) / math.log(2.0)
    vb = (kl * (t > 0).float()).mean()
    return mse + VB_WEIGHT * vb, per.mean().item(), vb.item()


def lr_at(step, total):
    if step < WARMUP:
        return LR * (step + 1) / WARMUP
    p = (step - WARMUP) / max(1, total - WARMUP)
    return LR * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * p)))


def train(stage, unet, sched, noising, photos, caption_embeds, empty):
    g = torch.Generator().manual_seed(SEEDS["data1" if stage == "stage1" else "data2"])
    opt = torch.optim.Adam(unet.parameters(), lr=LR)
    names = sorted(photos)
    total = STEPS[stage]
    curve, acc = [], []
    t0 = time.time()
    unet.train()
    for step in range(total):
        for grp in opt.param_groups:
            grp["lr"] = lr_at(step, total)
        if stage == "stage1":
            (x0,), emb = random_batch(g, photos, names, caption_embeds, empty, [16])
        else:
            (x0, low), emb = random_batch(g, photos, names, caption_embeds, empty, [32, 16])
        noise = torch.randn(x0.shape, generator=g)
        t = torch.randint(0, 1000, (BATCH,), generator=g)
        x_t = sched.add_noise(x0, noise, t)
        if stage == "stage1":
            out = unet(x_t, t, encoder_hidden_states=emb).sample
        else:
            up = F.interpolate(low, (32, 32), mode="bilinear", align_corners=True)
            level = (1000 * torch.rand(BATCH, generator=g, dtype=torch.float64) ** LEVEL_POWER).long().clamp(max=999)
            cond = noising.add_noise(up, torch.randn(up.shape, generator=g), level)
            out = unet(torch.cat([x_t, cond], 1), t, encoder_hidden_states=emb, class_labels=level).sample
        loss, mse, vb = hybrid_loss(sched, out, x0, x_t, t, noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gn = torch.nn.utils.clip_grad_norm_(unet.parameters(), GRAD_CLIP if GRAD_CLIP else float('inf'))
        opt.step()
        acc.append((mse, vb, gn.item()))
        if (step + 1) % max(1, total // 10) == 0:
            m = float(np.mean([a[0] for a in acc]))
            v = float(np.mean([a[1] for a in acc]))
            gm = float(np.median([a[2] for a in acc]))
            curve.append({"step": step + 1, "mse": m, "vb": v, "grad_norm_median": gm,
                          "seconds": round(time.time() - t0, 1)})
            print(f"    {stage} step {step + 1:5d}/{total}  mse {m:.4f}  vb {v:.4f}  |grad| {gm:.2f}  "
                  f"lr {lr_at(step, total):.1e}  {time.time() - t0:.0f} s", flush=True)
            acc = []
    unet.eval()
    return curve, time.time() - t0


# ---------------------------------------------------------------- evaluation (method.md's loops)


def dyn_threshold(x0, max_value):
    flat = x0.reshape(x0.shape[0], -1)
    s = torch.quantile(flat.abs(), 0.95, dim=1).clamp(1.0, max_value)[:, None]
    return (torch.maximum(torch.minimum(flat, s), -s) / s).reshape(x0.shape)


class Denoiser:
    """eps(x, t) of one stage at guidance 1 (conditional embedding only); stage II concatenates the
    fixed noised condition and passes the noise level as class label."""

    def __init__(self, unet, acp, emb, cond=None):
        self.unet, self.acp, self.emb, self.cond, self.calls = unet, acp, emb, cond, 0

    @torch.no_grad()
    def eps(self, x, t, cond=None):
        self.calls += 1
        tt = torch.tensor([t])
        cond = self.cond if cond is None else cond
        if cond is None:
            out = self.unet(x, tt, encoder_hidden_states=self.emb).sample
        else:
            out = self.unet(torch.cat([x, cond], 1), tt, encoder_hidden_states=self.emb,
                            class_labels=torch.tensor([NOISE_LEVEL])).sample
        return out[:, :3]

    def a(self, t):
        return self.acp[t].double().item() if t >= 0 else 1.0


def invert(d, x, passes):
    """passes None: plain DDIM inversion; k: fixed point with k extra passes per step. Returns x_T and
    per step the max |DDIM_step(x') - x|: how far x' is from an exact inverse of that step."""
    step = 1000 // INV_STEPS
    resid = []
    for t in range(0, 1000, step):
        a_t, a_n = d.a(t - step), d.a(t)
        e = d.eps(x, t)
        z = a_n ** 0.5 * (x - (1 - a_t) ** 0.5 * e) / a_t ** 0.5 + (1 - a_n) ** 0.5 * e
        for _ in range(passes or 0):
            e = d.eps(z, t)
            z = a_n ** 0.5 * (x - (1 - a_t) ** 0.5 * e) / a_t ** 0.5 + (1 - a_n) ** 0.5 * e
        calls = d.calls
        back = ddim_step(d, z, t, step, None)  # a diagnostic pass, not counted
        d.calls = calls
        resid.append((back - x).abs().max().item())
        x = z
    return x, resid


def ddim_step(d, x, t, step, threshold):
    a_t, a_p = d.a(t), d.a(t - step)
    e = d.eps(x, t)
    x0 = (x - (1 - a_t) ** 0.5 * e) / a_t ** 0.5
    if threshold is not None:
        x0 = dyn_threshold(x0, threshold)
    return a_p ** 0.5 * x0 + (1 - a_p) ** 0.5 * e


def reconstruct(d, x, threshold=None):
    step = 1000 // INV_STEPS
    for t in range(1000 - step, -1, -step):
        x = ddim_step(d, x, t, step, threshold)
    return x


def psnr(a, b):
    mse = (a.double() - b.double()).pow(2).mean().item()
    return 10 * math.log10(4.0 / mse) if mse > 0 else float("inf")


def condition_use(d, x32, up, g):
    """PSNR of stage II's clamped x0 prediction with the real / a zero condition, and of a seeded
    thresholded DDIM sample given the condition: does the UNet super-resolve or ignore its input?"""
    res = {"upscaled_input": round(psnr(up, x32), 2)}
    for t in (900, 700, 500):
        a = d.a(t)
        x_t = a ** 0.5 * x32 + (1 - a) ** 0.5 * torch.randn(x32.shape, generator=g)
        for tag, cond in (("cond", d.cond), ("zero_cond", torch.zeros_like(d.cond))):
            x0 = (x_t - (1 - a) ** 0.5 * d.eps(x_t, t, cond)) / a ** 0.5
            res[f"x0_t{t}_{tag}"] = round(psnr(x0.clamp(-1, 1), x32), 2)
    res["ddim_sample_thresholded"] = round(psnr(reconstruct(d, torch.randn(x32.shape, generator=g),
                                                            SCHED2["sample_max_value"]), x32), 2)
    return res


def evaluate(photos_dir, p1, unet1, unet2, acp1, acp2, acp_lr):
    results = {}
    for name in HELDOUT:
        path = os.path.join(photos_dir, f"{name}.png")
        emb = encode(p1, [PROMPTS[name]])
        x16, x32 = load_photo(path, 16), load_photo(path, 32)
        g = torch.Generator().manual_seed(SEEDS["eval"])
        up = F.interpolate(x16, (32, 32), mode="bilinear", align_corners=True)
        a = acp_lr[NOISE_LEVEL].double()
        cond = (a.sqrt() * up + (1 - a).sqrt() * torch.randn(up.shape, generator=g, dtype=torch.float64)).float()
        res = {}
        d2 = Denoiser(unet2, acp2, emb, cond)
        for stage, d, x, thr in [("stage1", Denoiser(unet1, acp1, emb), x16, SCHED1["sample_max_value"]),
                                 ("stage2", d2, x32, SCHED2["sample_max_value"])]:
            row = {}
            for method, passes in [("ddim", None)] + [(f"fixed_point_{k}", k) for k in FIXED_POINT_PASSES]:
                t0 = time.time()
                d.calls = 0
                x_T, resid = invert(d, x, passes)
                calls = d.calls
                rec = reconstruct(d, x_T)
                row[method] = {
                    "psnr": round(psnr(rec, x), 2),
                    "psnr_thresholded": round(psnr(reconstruct(d, x_T, thr), x), 2),
                    "max_step_residual": float(f"{max(resid):.3g}"),
                    "x_T_std": round(x_T.std().item(), 4),
                    "unet_calls_inversion": calls, "seconds": round(time.time() - t0, 2)}
            res[stage] = row
            print(f"    {name:8s} {stage}: " + "  ".join(
                f"{m} {r['psnr']:6.2f} dB (thr {r['psnr_thresholded']:6.2f}, resid {r['max_step_residual']:.1e})"
                for m, r in row.items()), flush=True)
        res["stage2_condition_use"] = condition_use(d2, x32, up, g)
        print(f"    {name:8s} stage2 condition use: {res['stage2_condition_use']}", flush=True)
        results[name] = {"prompt": PROMPTS[name], **res}
    return results


@torch.no_grad()
def sample_check(out, samples_dir=None):
    p1 = IFPipeline.from_pretrained(os.path.join(out, "stage1"))
    p2 = IFSuperResolutionPipeline.from_pretrained(os.path.join(out, "stage2"))
    for p in (p1, p2):
        p.set_progress_bar_config(disable=True)
    prompts = [PROMPTS["chelsea"], "a photo of a rocket", "galaxies", "a blurry photo of a motorcycle"]
    g = torch.Generator().manual_seed(SEEDS["sample"])
    pe, ne = p1.encode_prompt(prompts, True, device=torch.device("cpu"), clean_caption=False)
    img1 = p1(prompt_embeds=pe, negative_prompt_embeds=ne, num_inference_steps=10, guidance_scale=7.0,
              generator=g, output_type="pt").images
    img2 = p2(image=img1, prompt_embeds=pe, negative_prompt_embeds=ne, num_inference_steps=10,
              guidance_scale=4.0, noise_level=NOISE_LEVEL, generator=g, output_type="pt").images
    assert torch.isfinite(img1).all() and torch.isfinite(img2).all(), "text-to-image produced non-finite pixels"
    assert list(img1.shape) == [4, 3, 16, 16] and list(img2.shape) == [4, 3, 32, 32]
    if samples_dir:
        os.makedirs(samples_dir, exist_ok=True)
        for i, (a, b) in enumerate(zip(img1, img2)):
            for tag, im in (("16", a), ("32", b)):
                arr = ((im.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()
                Image.fromarray(arr).resize((128, 128), Image.NEAREST).save(os.path.join(samples_dir, f"{i}_{tag}.png"))
    up = F.interpolate(img1, (32, 32), mode="bilinear", align_corners=True)
    stats = {"prompts": prompts, "steps": 10, "guidance": [7.0, 4.0],
             "stage1_min_max": [round(img1.min().item(), 4), round(img1.max().item(), 4)],
             "stage2_min_max": [round(img2.min().item(), 4), round(img2.max().item(), 4)],
             "stage2_vs_upscaled_stage1_psnr": round(psnr(img2, up), 2)}
    print(f"    text-to-image (10 steps): stage1 range {stats['stage1_min_max']}, stage2 range "
          f"{stats['stage2_min_max']}, stage2 vs upscaled stage1 {stats['stage2_vs_upscaled_stage1_psnr']} dB")
    return stats


def folder_bytes(path):
    return sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(path) for f in fs)


def main():
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(repo, "tests", "fixtures", "trained_cascade"))
    ap.add_argument("--photos", default=os.path.join(repo, "tests", "fixtures", "photos"))
    ap.add_argument("--t5", default=os.path.join(repo, "tests", "fixtures", "t5"))
    ap.add_argument("--samples", default=None, help="also write the text-to-image samples as PNGs here")
    ap.add_argument("--steps", type=int, nargs=2, default=None, metavar=("STAGE1", "STAGE2"),
                    help="override the training steps (smoke tests; the committed fixture uses the defaults)")
    args = ap.parse_args()
    if args.steps:
        STEPS.update(stage1=args.steps[0], stage2=args.steps[1])

    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.disable_progress_bar()
    versions = {"torch": torch.__version__, "diffusers": diffusers.__version__,
                "transformers": transformers.__version__, "scikit-image": skimage.__version__,
                "numpy": np.__version__, "pillow": Image.__version__, "python": sys.version.split()[0]}
    print("    " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    shutil.rmtree(args.out, ignore_errors=True)
    os.makedirs(args.out)
    save_heldout(args.photos)

    # The untrained folders give the frozen T5 + tokenizer exactly as the saved folder has them.
    torch.manual_seed(SEEDS["unet1"])
    unet1 = UNet2DConditionModel(**TINY1)
    torch.manual_seed(SEEDS["unet2"])
    unet2 = UNet2DConditionModel(**TINY2)
    save_if_folders(args.out, args.t5, unet1, unet2)
    p1 = IFPipeline.from_pretrained(os.path.join(args.out, "stage1"))
    p1.text_encoder.requires_grad_(False)

    photos = load_train_photos()
    captions = make_captions(torch.Generator().manual_seed(SEEDS["captions"]))
    caption_embeds = {n: encode(p1, c) for n, c in captions.items()}
    empty = encode(p1, [""])
    sched1, sched2 = DDPMScheduler(**SCHED1), DDPMScheduler(**SCHED2)
    noising = DDPMScheduler(**NOISING2)
    n1, n2 = (sum(p.numel() for p in u.parameters()) for u in (unet1, unet2))
    print(f"    unet params: stage1 {n1:,}, stage2 {n2:,}; {len(photos)} training photos "
          f"{[tuple(p.shape[1:]) for p in photos.values()]}")

    log = {}
    for stage, unet, sched in [("stage1", unet1, sched1), ("stage2", unet2, sched2)]:
        print(f"== train {stage}", flush=True)
        curve, secs = train(stage, unet, sched, noising, photos, caption_embeds, empty)
        log[stage] = {"steps": STEPS[stage], "seconds": round(secs, 1), "curve": curve,
                      "final_mse": curve[-1]["mse"], "final_vb": curve[-1]["vb"]}

    print("== save", flush=True)
    shutil.rmtree(args.out)
    os.makedirs(args.out)
    save_if_folders(args.out, args.t5, unet1, unet2)

    print("== evaluate (held-out photos, 50 steps, guidance 1, float32)", flush=True)
    p1 = IFPipeline.from_pretrained(os.path.join(args.out, "stage1"))
    u1 = UNet2DConditionModel.from_pretrained(os.path.join(args.out, "stage1", "unet")).eval()
    u2 = UNet2DConditionModel.from_pretrained(os.path.join(args.out, "stage2", "unet")).eval()
    evaluation = evaluate(args.photos, p1, u1, u2, sched1.alphas_cumprod, sched2.alphas_cumprod,
                          noising.alphas_cumprod)
    sampling = sample_check(args.out, args.samples)

    sizes = {"stage1": folder_bytes(os.path.join(args.out, "stage1")),
             "stage2": folder_bytes(os.path.join(args.out, "stage2")), "photos": folder_bytes(args.photos)}
    record = {
        "generator": "tools/reference/train_tiny_cascade.py", "versions": versions, "seeds": SEEDS,
        "data": {"train_photos": TRAIN_PHOTOS, "heldout_photos": list(HELDOUT), "short_side": SHORT_SIDE,
                 "crop_min": CROP_MIN, "captions": captions, "empty_caption_p": EMPTY_CAPTION_P,
                 "stage2_level_power": LEVEL_POWER},
        "optim": {"batch": BATCH, "lr": LR, "warmup": WARMUP, "schedule": "cosine to 10%", "clip": 1.0,
                  "loss": "sum_b w_b mse_b(eps) / sum_b w_b, w = min(1/alphas_cumprod[t], cap) "
                          "+ improved-DDPM L_vb (detached mean, t > 0)",
                  "eps_weight_cap": EPS_WEIGHT_CAP, "threads": 1},
        "unet_configs": {"stage1": TINY1, "stage2": TINY2}, "params": {"stage1": n1, "stage2": n2},
        "training": log,
        "evaluation": {"inversion_steps": INV_STEPS, "guidance": 1.0, "noise_level": NOISE_LEVEL,
                       "psnr": "data range 2 on [-1, 1]", "dtype": "float32", "photos": evaluation},
        "text_to_image": sampling, "bytes": sizes,
        "note": "weights are bitwise reproducible with the same versions; 'seconds' fields vary",
    }
    with open(os.path.join(args.out, "training.json"), "w") as f:
        json.dump(record, f, indent=1, sort_keys=True)
        f.write("\n")

    print("== files")
    for root, dirs, files in os.walk(args.out):
        dirs.sort()
        for fn in sorted(files):
            p = os.path.join(root, fn)
            print(f"    {os.path.getsize(p):>9,}  {os.path.relpath(p, args.out)}")
    total = folder_bytes(args.out)
    print(f"    {total:>9,}  total trained_cascade/; stage1 {sizes['stage1']:,}, stage2 {sizes['stage2']:,}, "
          f"photos {sizes['photos']:,}")
    for k in ("stage1", "stage2", "photos"):
        assert sizes[k] < SIZE_BUDGET[k], f"{k} is {sizes[k]:,} bytes, over {SIZE_BUDGET[k]:,}"
    assert total < SIZE_BUDGET["total"], f"trained_cascade/ is {total:,} bytes"


if __name__ == "__main__":
    main()
