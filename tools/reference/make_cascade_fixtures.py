#!/usr/bin/env python3
"""Golden fixtures for the DeepFloyd-IF two-stage cascade (diffusers `IFPipeline` then
`IFSuperResolutionPipeline`), on tiny seeded components, in float64, with injected noise.

Run from the repository root (CPU, a few seconds, no network, byte-for-byte reproducible):
    /work/venv/ref/bin/python tools/reference/make_cascade_fixtures.py

Writes tests/fixtures/cascade/ (deletes and recreates it):
    stage1/   IF-I-like folder exactly as IFPipeline.save_pretrained writes it:
              model_index.json, unet/, scheduler/, text_encoder/, tokenizer/ (safety_checker,
              feature_extractor and watermarker are null, requires_safety_checker false)
    stage2/   IF-II-like folder as IFSuperResolutionPipeline.save_pretrained writes it:
              model_index.json, unet/, scheduler/, image_noising_scheduler/ (text_encoder and
              tokenizer null: see "stage2 text encoder" below)
    ddpm.safetensors, ddim.safetensors   recorded runs (keys below)

Components
- unet (both stages): make_if_unet_fixtures.py's STAGE1 / STAGE2 configs with encoder_hid_dim 64
  (= the T5's d_model), addition_embed_type_num_heads 4 (64 / 4 = 16 dims per pooling head, as
  there; 3 heads do not divide 64) and sample_size 16 / 32 (stage I makes 16x16 px, stage II
  32x32 px), built with diffusers' constructor after torch.manual_seed(10 / 11), default init,
  saved in float32.
- text_encoder: the T5 fixture tests/fixtures/t5/text_encoder (T5EncoderModel, d_model 64),
  re-saved by save_pretrained (same tensors; file bytes may differ from the T5 fixture's).
- tokenizer: T5Tokenizer.from_pretrained(tests/fixtures/t5/tokenizer, extra_ids=100), saved by
  save_pretrained. transformers 5 writes only tokenizer.json + tokenizer_config.json (no
  spiece.model); IF's real folder has spiece.model and no tokenizer.json, so this script deletes
  tokenizer.json and copies the fixture's spiece.model in: tokenizer/ = spiece.model +
  tokenizer_config.json. It checks the reloaded pipeline tokenizes 32 prompts (PROMPT, "" and
  the T5 fixture's tokens.json prompts) to the same ids as the in-memory tokenizer.
- schedulers: the values diffusers' scripts/convert_if.py used to make the real IF folders
  (IF-I-XL-v1.0, IF-II-L-v1.0), every other field at its DDPMScheduler default:
    stage1/scheduler: DDPMScheduler(variance_type="learned_range", beta_schedule="squaredcos_cap_v2",
        prediction_type="epsilon", thresholding=True, dynamic_thresholding_ratio=0.95,
        sample_max_value=1.5)   [+ num_train_timesteps 1000, clip_sample true, clip_sample_range 1.0
        (both unused: thresholding wins), timestep_spacing "leading", steps_offset 0]
    stage2/scheduler: the same with sample_max_value=1.0
    stage2/image_noising_scheduler: DDPMScheduler(beta_schedule="squaredcos_cap_v2"), all else
        default (variance_type fixed_small, thresholding false; only add_noise is used).
- stage2 text encoder: the real IF-II-L-v1.0 folder ships a T5 (convert_if.py passes tokenizer
  and text_encoder), and users load it with text_encoder=None and feed stage I's embeddings. A
  second T5 copy would push this folder over its 3 MB budget, so stage2 is saved with
  text_encoder=None, tokenizer=None (model_index.json has [null, null] for both); stage II gets
  stage I's prompt_embeds / negative_embeds, exactly as in the diffusers IF example.

Runs (both pipelines loaded back from the saved folders with from_pretrained, then
pipe.to(torch.float64): UNets and T5 hold float64 weights)
- prompt "a photo of a cat", negative prompt None (= ""), clean_caption=False (diffusers then only
  lower()s and strip()s the text), max_length 77.
- stage I: num_inference_steps 5 (timesteps 800 600 400 200 0), guidance_scale 7.0, 16x16.
- stage II: image = stage I's output tensor, num_inference_steps 4 (750 500 250 0), guidance_scale
  4.0, noise_level 250, 32x32, prompt_embeds / negative_prompt_embeds from stage I.
- output_type "pt" for both: returns the final intermediate_images tensor as is -- the sampler's
  x_0 in [-1, 1] scale with NO (x/2+0.5) scaling and NO clamp (those happen only for "pil"/"np");
  no safety checker, no watermark. It lies in [-1, 1] anyway because the last step (t = 0, a_p
  = 1) returns the dynamically thresholded x0 itself (DDPM: coefficients 1 and 0, no noise).
- ddpm: the folders' DDPM schedulers. ddim: stage I and II `scheduler` replaced by
  DDIMScheduler.from_config(config with variance_type replaced by "fixed_small"); the stage II
  image_noising_scheduler stays DDPM. eta 0 (the pipelines' default). Why the replacement:
  DDIMScheduler.from_config(pipe.scheduler.config) keeps variance_type "learned_range" in its
  config (an unknown key, kept as is); the IF pipelines then do not split off the predicted
  variance, DDIM's step does not either, and stage I fails with a shape mismatch (3 vs 6 channels)
  -- this script checks that it still does. Passing variance_type="fixed_small" as a from_config
  kwarg does not override it; a config without variance_type makes the pipeline raise
  AttributeError. With "fixed_small" (a value DDIM itself never reads) the pipelines take their
  split path (below).
- Noise: every randn_tensor call inside diffusers (pipeline_if, pipeline_if_superresolution,
  scheduling_ddpm, scheduling_ddim) is replaced by a draw from ONE torch.Generator seeded with
  NOISE_SEED per run, torch.randn(shape, dtype=float64), in call order, and recorded by name.
  Call order (ddpm): stage1_initial, stage1_step_0..3, stage2_initial, stage2_condition,
  stage2_step_0..2 (DDPM draws no noise at t = 0; DDIM with eta 0 draws none at all).

How each step is computed (checked here against a re-implementation, see check_step):
  UNet input: stage I cat([x_t, x_t]); stage II cat([cat([x_t, cond]), cat([x_t, cond])]) with
    class_labels [250, 250]; encoder_hidden_states cat([negative_embeds, prompt_embeds]).
  out = unet(...) [2, 6, H, W]; u, c = out.chunk(2) (u = negative/unconditional half first);
  eps = u[:, :3] + w * (c[:, :3] - u[:, :3]); v = c[:, 3:] (the CONDITIONAL half's variance);
  model_output = cat([eps, v]) (6 channels).
  If scheduler.config.variance_type is not learned/learned_range (ddim), the pipeline keeps
  model_output[:, :3] only. The scheduler's step then:
  DDPM (variance_type learned_range, so step() splits model_output into eps, v itself):
    a_t = alphas_cumprod[t], a_p = alphas_cumprod[t - 1000//N] (1.0 for the last step);
    x0 = (x_t - sqrt(1 - a_t) eps) / sqrt(a_t); x0 = dynamic_threshold(x0);
    beta = 1 - a_t/a_p; mean = sqrt(a_p) beta/(1-a_t) x0 + sqrt(a_t/a_p) (1-a_p)/(1-a_t) x_t;
    t > 0: post = max((1-a_p)/(1-a_t) beta, 1e-20); frac = (v+1)/2;
           logvar = frac ln(beta) + (1-frac) ln(post); x_prev = mean + exp(logvar/2) noise.
  DDIM (eta 0): x0 as above (thresholded); x_prev = sqrt(a_p) x0 + sqrt(1 - a_p) eps, a_p = 1.0
    (set_alpha_to_one) for the last step.
  dynamic_threshold: per sample s = quantile(|x0| flattened over C,H,W, 0.95) (linear
    interpolation), s = clamp(s, 1, sample_max_value), x0 = clamp(x0, -s, s) / s.
  Stage II condition: up = F.interpolate(stage1_output, (32, 32), "bilinear", align_corners=True)
    (stage I output raw, no clamp); cond = sqrt(a_250) up + sqrt(1 - a_250) stage2_condition with
    the image_noising_scheduler's alphas_cumprod, computed once before the loop.
  Precision inside diffusers in this float64 run: the schedulers' betas/alphas_cumprod are float32
  tensors and every step coefficient (sqrt(a_t), 1 - a_t, beta, post, ln(beta), ln(post), ...) is
  computed in float32 on 0-d tensors, then promoted to float64 when it meets the f64 tensors
  (frac, exp, the products and the quantile are f64); add_noise instead casts alphas_cumprod to
  f64 first and takes sqrt in f64. Also f32: the UNets' timestep/class-label sinusoid, their
  AttentionPooling softmax, and T5's RMSNorm variance (hidden.to(float32).pow(2).mean).

Keys (float64 unless noted; batch 1; i = step index). The 3 MB budget (two UNets, T5 and
spiece.model take 2.5 MB) leaves room for the injected noise, the stage-I trajectory and a few
intermediates only; everything else is re-derivable from these (the script checks it all):
  ddpm.safetensors only (the ddim run tokenizes and encodes identically, checked bitwise):
  input_ids, attention_mask                   int64 [1, 77]  tokenizer output for the prompt
  negative_input_ids, negative_attention_mask int64 [1, 77]  the same for "" (ids [1, 0, ...])
  prompt_embeds, negative_embeds              [1, 77, 64]    T5 last_hidden_state of those
  stage1_unet_output_0                        [2, 6, 16, 16] raw stage-I UNet output at step 0
                                              (batch [uncond, cond]; the same in the ddim run)
  stage2_noised_condition                     [1, 3, 32, 32] cond = the UNet's channels 3..6
  both files:
  stage1_timesteps                            int64 [5]      800 600 400 200 0
  stage1_initial                              [1, 3, 16, 16] x_T (init_noise_sigma is 1)
  stage1_step_{i}                             [1, 3, 16, 16] variance noise of step i (ddpm, i<4)
  stage1_sample_{i}                           [1, 3, 16, 16] x after step i, i < 4 (after step
                                              4 it is stage1_output)
  stage1_output                               [1, 3, 16, 16] stage I image, output_type "pt"
  stage2_timesteps                            int64 [4]      750 500 250 0
  stage2_noise_level                          int64 [1]      250 (class label of both halves)
  stage2_initial                              [1, 3, 32, 32] x_T of stage II
  stage2_condition                            [1, 3, 32, 32] noise added to the upscaled image
  stage2_step_{i}                             [1, 3, 32, 32] variance noise of step i (ddpm, i<3)
  stage2_output                               [1, 3, 32, 32] stage II image, output_type "pt"
The metadata key "fixture" holds a JSON object: prompt, steps, guidance, noise level, seeds, the
noise draw order, versions, the scheduler configs as the pipelines used them (for ddim the
DDIMScheduler configs), and for ddim the note on the variance split.
"""
import argparse
import json
import os
import shutil
import sys

import torch
import torch.nn.functional as F

import diffusers
import transformers
from diffusers import (DDIMScheduler, DDPMScheduler, IFPipeline, IFSuperResolutionPipeline,
                       UNet2DConditionModel)
from diffusers.pipelines.deepfloyd_if import pipeline_if, pipeline_if_superresolution
from diffusers.schedulers import scheduling_ddim, scheduling_ddpm
from safetensors.torch import save_file
from transformers import T5EncoderModel, T5Tokenizer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_if_unet_fixtures import STAGE1, STAGE2  # noqa: E402  (sibling script, main() guarded)

# encoder_hid_dim 64 = the T5 fixture's d_model; the AttentionPooling over those 64 dims needs a
# head count dividing 64: 4 heads keep make_if_unet_fixtures.py's 16 dims per pooling head.
UNET1 = dict(STAGE1, encoder_hid_dim=64, addition_embed_type_num_heads=4, sample_size=16)
UNET2 = dict(STAGE2, encoder_hid_dim=64, addition_embed_type_num_heads=4, sample_size=32)
UNET_SEEDS = (10, 11)
# scripts/convert_if.py in diffusers (how the real IF folders were made).
SCHED1 = dict(variance_type="learned_range", beta_schedule="squaredcos_cap_v2", prediction_type="epsilon",
              thresholding=True, dynamic_thresholding_ratio=0.95, sample_max_value=1.5)
SCHED2 = dict(SCHED1, sample_max_value=1.0)
NOISING2 = dict(beta_schedule="squaredcos_cap_v2")
EXTRA_IDS = 100

PROMPT = "a photo of a cat"
STEPS1, STEPS2 = 5, 4
GUIDANCE1, GUIDANCE2 = 7.0, 4.0
NOISE_LEVEL = 250
NOISE_SEED = 2024
SIZE_BUDGET = 3_000_000
F64 = torch.float64


class Recorder:
    """Injected noise and per-step records of one cascade run."""

    def __init__(self, seed):
        self.gen = torch.Generator().manual_seed(seed)
        self.t = {}
        self.stage = None
        self.step = None
        self.order = []  # noise names in draw order
        self.unet_calls = []  # (stage, step, args, kwargs, output) for the checks

    def randn(self, module):
        def draw(shape, generator=None, device=None, dtype=None, layout=None):
            assert generator is None, "the runs pass no generator: every draw must come from here"
            assert dtype == F64, f"{module} asked for {dtype} noise: the run is not in float64"
            caller = sys._getframe(1).f_code.co_name
            if module == "pipeline" and caller == "prepare_intermediate_images":
                name = f"{self.stage}_initial"
            elif module == "pipeline":
                assert self.stage == "stage2" and caller == "__call__", caller
                name = "stage2_condition"
            else:
                assert caller == "step", caller
                name = f"{self.stage}_step_{self.step}"
            assert name not in self.t, f"second draw for {name}"
            self.t[name] = torch.randn(tuple(shape), generator=self.gen, dtype=F64)
            self.order.append(name)
            return self.t[name].clone()
        return draw


def patch_randn(rec):
    saved = []
    for mod, kind in [(pipeline_if, "pipeline"), (pipeline_if_superresolution, "pipeline"),
                      (scheduling_ddpm, "scheduler"), (scheduling_ddim, "scheduler")]:
        saved.append((mod, mod.randn_tensor))
        mod.randn_tensor = rec.randn(kind)
    return saved


def unpatch(saved):
    for mod, fn in saved:
        mod.randn_tensor = fn


def instrument(pipe, rec, stage):
    """Record what the pipeline hands to unet and scheduler.step, and what step returns."""
    inner_step = pipe.scheduler.step
    counter = {"i": 0}

    def step(model_output, t, sample, *args, **kwargs):
        i = counter["i"]
        rec.step = i
        out = inner_step(model_output, t, sample, *args, **kwargs)
        prev, x0 = (out[0], out[1]) if isinstance(out, tuple) else (out.prev_sample, out.pred_original_sample)
        rec.t[f"{stage}_model_output_{i}"] = model_output.detach().clone()
        rec.t[f"{stage}_x0_{i}"] = x0.detach().clone()
        rec.t[f"{stage}_sample_{i}"] = prev.detach().clone()
        rec.t.setdefault(f"{stage}_sample_in_{i}", sample.detach().clone())  # for the checks only
        counter["i"] += 1
        return out

    pipe.scheduler.step = step

    def unet_hook(module, args, kwargs, output):
        i = sum(1 for call in rec.unet_calls if call[0] == stage)  # one UNet call per step
        rec.unet_calls.append((stage, i, args, kwargs, output[0].detach().clone()))

    return pipe.unet.register_forward_hook(unet_hook, with_kwargs=True)


def guard_dtypes(modules):
    """Every submodule must return float64, except the timestep sinusoid (Timesteps, f32 inside
    diffusers; the UNet casts it to f64 next). Internal upcasts that do not show in a module's
    output (AttentionPooling softmax, T5 RMSNorm variance) are documented above."""
    def hook(module, args, output):
        outs = [output.last_hidden_state] if hasattr(output, "last_hidden_state") else (
            output if isinstance(output, (tuple, list)) else [output])
        for x in outs:
            if torch.is_tensor(x) and x.is_floating_point() and x.dtype != F64:
                assert type(module).__name__ == "Timesteps", f"{type(module).__name__} returned {x.dtype}"
    return [sub.register_forward_hook(hook) for m in modules for sub in m.modules()]


# ---------------------------------------------------------------- independent re-implementation


def quantile_linear(x, q):
    """Per-row quantile with linear interpolation at q*(n-1) (numpy's default), by sorting."""
    s, _ = torch.sort(x, dim=1)
    pos = q * (s.shape[1] - 1)
    lo = int(pos // 1)
    frac = pos - lo
    return s[:, lo] + frac * (s[:, min(lo + 1, s.shape[1] - 1)] - s[:, lo])


QUANTILES = []  # (stage, step, unclamped s) of every threshold, for the coverage report


def threshold(x0, ratio, max_value):
    flat = x0.reshape(x0.shape[0], -1)
    q = quantile_linear(flat.abs(), ratio)
    QUANTILES.append(q.item())
    s = q.clamp(1.0, max_value).unsqueeze(1)
    return (torch.maximum(torch.minimum(flat, s), -s) / s).reshape(x0.shape)


def check_step(kind, cfg, acp, n_steps, t, x, model_output, noise):
    """x_prev and thresholded x0 from the documented formulas (f32 scalar coefficients)."""
    f32 = lambda v: torch.tensor(v, dtype=torch.float32)  # noqa: E731
    prev_t = t - cfg["num_train_timesteps"] // n_steps
    a_t = acp[t]
    a_p = acp[prev_t] if prev_t >= 0 else f32(1.0)
    eps = model_output[:, :3]
    x0 = (x - (1 - a_t) ** 0.5 * eps) / a_t ** 0.5
    x0 = threshold(x0, cfg["dynamic_thresholding_ratio"], cfg["sample_max_value"])
    if kind == "ddim":
        assert model_output.shape[1] == 3 and noise is None
        return (1 - a_p) ** 0.5 * eps + a_p ** 0.5 * x0, x0
    assert model_output.shape[1] == 6
    v = model_output[:, 3:]
    beta = 1 - a_t / a_p
    mean = (a_p ** 0.5 * beta) / (1 - a_t) * x0 + (a_t / a_p) ** 0.5 * (1 - a_p) / (1 - a_t) * x
    if t == 0:
        assert noise is None
        return mean, x0
    post = torch.clamp((1 - a_p) / (1 - a_t) * beta, min=1e-20)
    frac = (v + 1) / 2
    logvar = frac * torch.log(beta) + (1 - frac) * torch.log(post)
    return mean + torch.exp(0.5 * logvar) * noise, x0


def close(a, b, what, tol=1e-12):
    err = ((a - b).abs().max() / b.abs().max().clamp(min=1e-30)).item()
    assert err < tol, f"{what}: relative error {err:.2e}"
    return err


def verify_run(kind, rec, pipe1, pipe2):
    """Re-derive guidance, conditioning and every step from the records."""
    worst = 0.0
    w = {"stage1": GUIDANCE1, "stage2": GUIDANCE2}
    emb = torch.cat([rec.t["negative_embeds"], rec.t["prompt_embeds"]])
    for stage, i, args, kwargs, out in rec.unet_calls:
        x_in = rec.t[f"{stage}_sample_in_{i}"]
        sample = args[0]
        if stage == "stage1":
            assert torch.equal(sample, torch.cat([x_in, x_in]))
        else:
            cond = rec.t["stage2_noised_condition"]
            assert torch.equal(sample, torch.cat([torch.cat([x_in, cond], 1)] * 2))
            assert kwargs["class_labels"].tolist() == [NOISE_LEVEL] * 2
        assert torch.equal(kwargs["encoder_hidden_states"], emb)
        assert sample.dtype == F64 and out.dtype == F64
        u, c = out.chunk(2)
        eps = u[:, :3] + w[stage] * (c[:, :3] - u[:, :3])
        expect = torch.cat([eps, c[:, 3:]], 1) if kind == "ddpm" else eps
        worst = max(worst, close(rec.t[f"{stage}_model_output_{i}"], expect, f"{kind} {stage} guidance {i}"))
    for stage, pipe in [("stage1", pipe1), ("stage2", pipe2)]:
        cfg = dict(pipe.scheduler.config)
        acp = pipe.scheduler.alphas_cumprod
        ts = rec.t[f"{stage}_timesteps"].tolist()
        QUANTILES.clear()
        for i, t in enumerate(ts):
            got_prev, got_x0 = rec.t[f"{stage}_sample_{i}"], rec.t[f"{stage}_x0_{i}"]
            prev, x0 = check_step(kind, cfg, acp, len(ts), t, rec.t[f"{stage}_sample_in_{i}"],
                                  rec.t[f"{stage}_model_output_{i}"], rec.t.get(f"{stage}_step_{i}"))
            worst = max(worst, close(got_x0, x0, f"{kind} {stage} x0 {i}"),
                        close(got_prev, prev, f"{kind} {stage} step {i}"))
            if i + 1 < len(ts):
                assert torch.equal(rec.t[f"{stage}_sample_in_{i + 1}"], got_prev)
        assert torch.equal(rec.t[f"{stage}_sample_in_0"], rec.t[f"{stage}_initial"])
        print(f"    {kind} {stage}: 0.95-quantile of |x0| per step (clamped to [1, "
              f"{cfg['sample_max_value']}]): {' '.join(f'{q:.3f}' for q in QUANTILES)}")
        assert torch.equal(rec.t[f"{stage}_sample_{len(ts) - 1}"], rec.t[f"{stage}_output"])
    up = F.interpolate(rec.t["stage1_output"], (32, 32), mode="bilinear", align_corners=True)
    a = pipe2.image_noising_scheduler.alphas_cumprod.to(F64)[NOISE_LEVEL]
    cond = a ** 0.5 * up + (1 - a) ** 0.5 * rec.t["stage2_condition"]
    worst = max(worst, close(rec.t["stage2_noised_condition"], cond, "stage2 condition"))
    print(f"    {kind}: guidance, conditioning and all steps re-derived, max rel err {worst:.1e}")


# ---------------------------------------------------------------- build, run, save


def save_if_folders(out, t5_dir, unet1, unet2):
    """out/stage1 (IFPipeline with the T5 fixture in t5_dir) and out/stage2
    (IFSuperResolutionPipeline) laid out as IF's real folders; returns the tokenizer."""
    tokenizer = T5Tokenizer.from_pretrained(os.path.join(t5_dir, "tokenizer"), extra_ids=EXTRA_IDS)
    text_encoder = T5EncoderModel.from_pretrained(os.path.join(t5_dir, "text_encoder")).eval()
    assert text_encoder.config.d_model == UNET1["encoder_hid_dim"] == UNET2["encoder_hid_dim"]

    stage1 = IFPipeline(tokenizer=tokenizer, text_encoder=text_encoder, unet=unet1,
                        scheduler=DDPMScheduler(**SCHED1), safety_checker=None, feature_extractor=None,
                        watermarker=None, requires_safety_checker=False)
    stage1.save_pretrained(os.path.join(out, "stage1"), safe_serialization=True)
    tok_dir = os.path.join(out, "stage1", "tokenizer")
    written = sorted(os.listdir(tok_dir))
    print(f"    tokenizer/ as save_pretrained wrote it: {written}")
    # transformers 5 saves a T5Tokenizer as tokenizer.json + tokenizer_config.json only. IF's real
    # folder has spiece.model and no tokenizer.json: copy the model in, drop tokenizer.json.
    if "tokenizer.json" in written:
        os.remove(os.path.join(tok_dir, "tokenizer.json"))
    if "spiece.model" not in written:
        shutil.copyfile(os.path.join(t5_dir, "tokenizer", "spiece.model"), os.path.join(tok_dir, "spiece.model"))

    stage2 = IFSuperResolutionPipeline(tokenizer=None, text_encoder=None, unet=unet2,
                                       scheduler=DDPMScheduler(**SCHED2),
                                       image_noising_scheduler=DDPMScheduler(**NOISING2),
                                       safety_checker=None, feature_extractor=None, watermarker=None,
                                       requires_safety_checker=False)
    stage2.save_pretrained(os.path.join(out, "stage2"), safe_serialization=True)
    return tokenizer


def build_folders(out, t5_dir):
    torch.manual_seed(UNET_SEEDS[0])
    unet1 = UNet2DConditionModel(**UNET1).eval()
    torch.manual_seed(UNET_SEEDS[1])
    unet2 = UNet2DConditionModel(**UNET2).eval()
    tokenizer = save_if_folders(out, t5_dir, unet1, unet2)
    return tokenizer, sum(p.numel() for p in unet1.parameters()), sum(p.numel() for p in unet2.parameters())


def load(out):
    p1 = IFPipeline.from_pretrained(os.path.join(out, "stage1"))
    p2 = IFSuperResolutionPipeline.from_pretrained(os.path.join(out, "stage2"))
    for p in (p1, p2):
        p.to(F64)
        p.set_progress_bar_config(disable=True)
    assert p1.unet.dtype == p1.text_encoder.dtype == p2.unet.dtype == F64
    assert all(t.dtype == F64 for m in (p1.unet, p1.text_encoder, p2.unet) for t in m.state_dict().values())
    return p1, p2


def ddim_from(scheduler):
    cfg = dict(scheduler.config)
    cfg["variance_type"] = "fixed_small"  # see the docstring: the pipeline then splits off v
    return DDIMScheduler.from_config(cfg)


def stage1_call(p1):
    return p1(prompt=PROMPT, num_inference_steps=STEPS1, guidance_scale=GUIDANCE1, output_type="pt",
              clean_caption=False).images


def check_plain_ddim_fails(out):
    """DDIMScheduler.from_config(pipe.scheduler.config) as is: documented to fail, check it still does."""
    p1, _ = load(out)
    p1.scheduler = DDIMScheduler.from_config(p1.scheduler.config)
    assert p1.scheduler.config.variance_type == "learned_range"
    saved = patch_randn(Recorder(0))
    try:
        stage1_call(p1)
    except RuntimeError as e:
        assert "must match the size of tensor b (6)" in str(e), f"failed for another reason: {e}"
        print(f"    plain DDIMScheduler.from_config(pipe.scheduler.config) fails as documented: {e}")
        return str(e)
    finally:
        unpatch(saved)
    raise AssertionError("plain DDIM from_config ran: update the docstring and the ddim run")


def run(kind, out):
    p1, p2 = load(out)
    if kind == "ddim":
        p1.scheduler = ddim_from(p1.scheduler)
        p2.scheduler = ddim_from(p2.scheduler)
    rec = Recorder(NOISE_SEED)
    hooks = [instrument(p1, rec, "stage1"), instrument(p2, rec, "stage2")]
    hooks += guard_dtypes([p1.unet, p1.text_encoder, p2.unet])

    enc = []
    hooks.append(p1.text_encoder.register_forward_hook(
        lambda m, a, kw, o: enc.append((a[0].clone(), kw["attention_mask"].clone(), o[0].clone())),
        with_kwargs=True))
    inner_add_noise = p2.image_noising_scheduler.add_noise

    def add_noise(original, noise, timesteps):
        noised = inner_add_noise(original, noise, timesteps)
        assert timesteps.tolist() == [NOISE_LEVEL]
        rec.t["stage2_noised_condition"] = noised.clone()
        return noised

    p2.image_noising_scheduler.add_noise = add_noise

    saved = patch_randn(rec)
    try:
        rec.stage, rec.step = "stage1", None
        img1 = stage1_call(p1)
        rec.t["stage1_timesteps"] = p1.scheduler.timesteps.clone()
        (ids, mask, pe), (nids, nmask, ne) = enc
        rec.t.update(input_ids=ids, attention_mask=mask, prompt_embeds=pe,
                     negative_input_ids=nids, negative_attention_mask=nmask, negative_embeds=ne)
        rec.t["stage1_output"] = img1.clone()
        rec.stage, rec.step = "stage2", None
        img2 = p2(image=img1, prompt_embeds=pe, negative_prompt_embeds=ne, num_inference_steps=STEPS2,
                  guidance_scale=GUIDANCE2, noise_level=NOISE_LEVEL, output_type="pt",
                  clean_caption=False).images
        rec.t["stage2_timesteps"] = p2.scheduler.timesteps.clone()
        rec.t["stage2_noise_level"] = torch.tensor([NOISE_LEVEL], dtype=torch.int64)
        rec.t["stage2_output"] = img2.clone()
    finally:
        unpatch(saved)
        for h in hooks:
            h.remove()

    # The pipeline's embeddings are the ones encode_prompt returns.
    pe2, ne2 = p1.encode_prompt(PROMPT, True, device=torch.device("cpu"), clean_caption=False)
    assert torch.equal(pe2, pe) and torch.equal(ne2, ne) and pe.dtype == F64
    assert ids.dtype == torch.int64 and list(ids.shape) == [1, 77]
    verify_run(kind, rec, p1, p2)
    rec.t["stage1_unet_output_0"] = rec.unet_calls[0][4]
    assert rec.unet_calls[0][:2] == ("stage1", 0)
    configs = {"stage1.scheduler": dict(p1.scheduler.config), "stage2.scheduler": dict(p2.scheduler.config),
               "stage2.image_noising_scheduler": dict(p2.image_noising_scheduler.config)}
    return {k: v.contiguous() for k, v in rec.t.items()}, rec.order, configs


TEXT_KEYS = ["input_ids", "attention_mask", "negative_input_ids", "negative_attention_mask",
             "prompt_embeds", "negative_embeds"]


def select(kind, t):
    """What goes into <kind>.safetensors (see the key table in the docstring)."""
    keep = ["stage1_timesteps", "stage1_initial", "stage1_output", "stage2_timesteps", "stage2_noise_level",
            "stage2_initial", "stage2_condition", "stage2_output"]
    keep += [f"stage1_sample_{i}" for i in range(STEPS1 - 1)]
    keep += [k for k in t if k.startswith(("stage1_step_", "stage2_step_"))]
    if kind == "ddpm":
        keep += TEXT_KEYS + ["stage1_unet_output_0", "stage2_noised_condition"]
    return {k: t[k] for k in keep}


def describe(tensors):
    for k in sorted(tensors):
        v = tensors[k]
        assert torch.isfinite(v.double()).all(), f"{k} is not finite"
        if v.is_floating_point():
            assert v.dtype == F64, k
            assert v.abs().max() > 1e-3, f"{k} is (almost) zero"
            print(f"      {k:28s} {str(list(v.shape)):16s} rms {v.pow(2).mean().sqrt():.4f}  "
                  f"max|.| {v.abs().max():.4f}")
        else:
            assert v.dtype == torch.int64, k
            flat = v.flatten().tolist()
            print(f"      {k:28s} {str(list(v.shape)):16s} int64 {flat[:8]}{' ...' if len(flat) > 8 else ''}")


def main():
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(repo, "tests", "fixtures", "cascade"))
    ap.add_argument("--t5", default=os.path.join(repo, "tests", "fixtures", "t5"),
                    help="the T5 fixture folder (text_encoder/, tokenizer/spiece.model)")
    args = ap.parse_args()

    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)  # bitwise-reproducible CPU reductions
    shutil.rmtree(args.out, ignore_errors=True)
    os.makedirs(args.out)
    print(f"torch {torch.__version__}, diffusers {diffusers.__version__}, transformers "
          f"{transformers.__version__}, python {sys.version.split()[0]}")

    print("== folders")
    tokenizer, n1, n2 = build_folders(args.out, args.t5)
    print(f"    unet params: stage1 {n1:,}, stage2 {n2:,}")
    p1, _ = load(args.out)
    prompts = [PROMPT, ""] + [p["text"] for p in json.load(open(os.path.join(args.t5, "tokens.json")))["prompts"]]
    for text in prompts:
        a = tokenizer(text, padding="max_length", max_length=77, truncation=True).input_ids
        b = p1.tokenizer(text, padding="max_length", max_length=77, truncation=True).input_ids
        assert a == b, f"reloaded tokenizer (no tokenizer.json) differs on {text!r}"
    print(f"    stage1/tokenizer reloads from spiece.model + tokenizer_config.json: same ids on "
          f"{len(prompts)} prompts; holds {sorted(os.listdir(os.path.join(args.out, 'stage1', 'tokenizer')))}")

    ddim_error = check_plain_ddim_fails(args.out)
    runs = {}
    for kind in ["ddpm", "ddim"]:
        print(f"== {kind}")
        full, order, configs = run(kind, args.out)
        again, order2, _ = run(kind, args.out)
        assert order == order2 and full.keys() == again.keys(), "not deterministic"
        assert all(torch.equal(full[k], again[k]) for k in full), "not deterministic"
        runs[kind] = full
        print(f"    noise draws in order: {order}")
        tensors = select(kind, full)
        describe(tensors)
        meta = {
            "generator": "tools/reference/make_cascade_fixtures.py",
            "scheduler": kind, "prompt": PROMPT, "negative_prompt": "", "clean_caption": False,
            "stage1": {"num_inference_steps": STEPS1, "guidance_scale": GUIDANCE1, "size": 16},
            "stage2": {"num_inference_steps": STEPS2, "guidance_scale": GUIDANCE2, "size": 32,
                       "noise_level": NOISE_LEVEL},
            "noise_seed": NOISE_SEED, "noise_order": order, "scheduler_configs": configs,
            "output_type": "pt (raw sampler output, no /2+0.5, no clamp)",
            "torch": torch.__version__, "diffusers": diffusers.__version__,
            "transformers": transformers.__version__,
        }
        if kind == "ddim":
            meta["ddim_note"] = ("DDIMScheduler.from_config(config with variance_type='fixed_small'); "
                                 "the pipelines split off the predicted variance after guidance. "
                                 f"Plain from_config fails in stage I: {ddim_error}")
        save_file(tensors, os.path.join(args.out, f"{kind}.safetensors"),
                  metadata={"fixture": json.dumps(meta, sort_keys=True)})

    for k in TEXT_KEYS + ["stage1_initial", "stage1_unet_output_0"]:
        assert torch.equal(runs["ddpm"][k], runs["ddim"][k]), f"{k} differs between the ddpm and ddim runs"

    print("== files")
    total = 0
    for root, dirs, files in os.walk(args.out):
        dirs.sort()
        for f in sorted(files):
            p = os.path.join(root, f)
            total += os.path.getsize(p)
            print(f"    {os.path.getsize(p):>9,}  {os.path.relpath(p, args.out)}")
    print(f"    {total:>9,}  total")
    assert total < SIZE_BUDGET, f"fixtures exceed {SIZE_BUDGET:,} bytes"


if __name__ == "__main__":
    main()
