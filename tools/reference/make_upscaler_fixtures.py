#!/usr/bin/env python3
"""Golden fixtures for the SD x4 upscaler as a pipeline (diffusers StableDiffusionUpscalePipeline):
CLIP tokenizer + CLIP text encoder + x4 UNet + VAE + DDIM (v-prediction) + the low-res noising
DDPM scheduler, run end to end on tiny components.

The pipeline is assembled from the other fixtures (the Rust test does the same in a temporary
folder): unet/ = sd_unet/upscaler (make_sd_unet_fixtures.py), vae/ = vae/vae
(make_vae_fixtures.py), tokenizer/ = clip_tokenizer/tokenizer (make_clip_tokenizer_fixtures.py,
CLIP's real 49,408-token vocabulary). This script writes what is new, under tests/fixtures/upscaler/:

  model_index.json, scheduler/ (DDIMScheduler as the real upscaler's: scaled_linear betas,
      v_prediction, set_alpha_to_one false, steps_offset 1, clip_sample false),
      low_res_scheduler/ (DDPMScheduler, scaled_linear, clip_sample false);
  text_encoder/: a tiny CLIPTextModel on the real vocabulary (hidden 20 = the UNet's cross-attention
      width, 1 layer, exact GELU, eos_token_id 2 as SD 2's config), weights stored as fp16 (the
      embedding table is 49,408 rows) and used as those fp16 values cast up;
  upscaler_io.safetensors: the low-res `image` [1, 3, 12, 16] in [-1, 1], the injected noises
      `upscaler_condition` (added once to the image at noise_level) and `upscaler_initial` (the
      initial latent), the float64 prompt embeddings `cond` / `uncond`, the final `latents` and
      `decoded` = vae.decode(latents / scaling_factor).sample (not clamped), all from diffusers in
      float64; settings in the metadata (prompt, negative prompt "", steps, guidance, noise_level).

Run from the repository root (after the fixtures it reuses):
    /work/venv/ref/bin/python tools/reference/make_upscaler_fixtures.py
"""
import argparse
import json
import os

import diffusers
import torch
from diffusers import (AutoencoderKL, DDIMScheduler, DDPMScheduler, StableDiffusionUpscalePipeline,
                       UNet2DConditionModel)
from safetensors.torch import load_file, save_file
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

PROMPT = "a photo of a cat, 4k"
STEPS, GUIDANCE, NOISE_LEVEL = 4, 9.0, 20
LOW_RES = (1, 3, 12, 16)


def text_encoder(out_dir):
    config = CLIPTextConfig(
        vocab_size=49408, hidden_size=20, intermediate_size=24, num_hidden_layers=1,
        num_attention_heads=2, max_position_embeddings=77, hidden_act="gelu", layer_norm_eps=1e-5,
        bos_token_id=0, eos_token_id=2, pad_token_id=1, projection_dim=16,
        attn_implementation="eager",
    )
    torch.manual_seed(20)
    model = CLIPTextModel(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_((torch.randn_like(p) * (1.0 if "embedding" in name else 0.3)).half().float())
    folder = os.path.join(out_dir, "text_encoder")
    model.save_pretrained(folder)
    path = os.path.join(folder, "model.safetensors")
    save_file({k: v.half() for k, v in load_file(path).items()}, path, metadata={"format": "pt"})
    return model


def main():
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    fixtures = os.path.join(repo, "tests", "fixtures")
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(fixtures, "upscaler"))
    args = ap.parse_args()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    os.makedirs(args.out, exist_ok=True)

    scheduler = DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.0001, beta_end=0.02,
                              prediction_type="v_prediction", set_alpha_to_one=False, steps_offset=1,
                              clip_sample=False, num_train_timesteps=1000)
    low_res_scheduler = DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.0001, beta_end=0.02,
                                      clip_sample=False, num_train_timesteps=1000)
    scheduler.save_pretrained(os.path.join(args.out, "scheduler"))
    low_res_scheduler.save_pretrained(os.path.join(args.out, "low_res_scheduler"))

    pipe = StableDiffusionUpscalePipeline(
        vae=AutoencoderKL.from_pretrained(os.path.join(fixtures, "vae", "vae")),
        text_encoder=text_encoder(args.out),
        tokenizer=CLIPTokenizer.from_pretrained(os.path.join(fixtures, "clip_tokenizer", "tokenizer")),
        unet=UNet2DConditionModel.from_pretrained(os.path.join(fixtures, "sd_unet", "upscaler")),
        low_res_scheduler=low_res_scheduler,
        scheduler=scheduler,
        max_noise_level=350,
    )
    index = {"_class_name": "StableDiffusionUpscalePipeline", "_diffusers_version": diffusers.__version__,
             "max_noise_level": 350}
    for name in ["low_res_scheduler", "scheduler", "text_encoder", "tokenizer", "unet", "vae"]:
        module = getattr(pipe, name)
        index[name] = [module.__class__.__module__.split(".")[0], module.__class__.__name__]
    with open(os.path.join(args.out, "model_index.json"), "w") as f:
        json.dump(index, f, indent=2, sort_keys=True)
        f.write("\n")

    pipe = pipe.to(torch.float64)
    g = torch.Generator().manual_seed(21)
    image = torch.rand(LOW_RES, generator=g, dtype=torch.float64) * 2 - 1
    condition = torch.randn(LOW_RES, generator=g, dtype=torch.float64)
    latent_shape = (1, pipe.vae.config.latent_channels, LOW_RES[2], LOW_RES[3])
    initial = torch.randn(latent_shape, generator=g, dtype=torch.float64)

    # The pipeline draws the condition's noise with randn_tensor(image.shape, generator): give it a
    # generator whose first draw is exactly `condition`, by patching randn_tensor for this run.
    import diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion_upscale as up
    draws = iter([condition])
    real = up.randn_tensor
    up.randn_tensor = lambda shape, **kw: next(draws).to(kw.get("dtype") or torch.float64)
    try:
        cond, uncond = pipe.encode_prompt(PROMPT, "cpu", 1, True, negative_prompt="")
        latents = pipe(prompt=PROMPT, image=image, num_inference_steps=STEPS, guidance_scale=GUIDANCE,
                       noise_level=NOISE_LEVEL, latents=initial, output_type="latent").images
    finally:
        up.randn_tensor = real
    with torch.no_grad():
        decoded = pipe.vae.decode(latents / pipe.vae.config.scaling_factor).sample
    print(f"latents |max| {latents.abs().max():.4f}, decoded {list(decoded.shape)} |max| {decoded.abs().max():.4f}")
    meta = {"prompt": PROMPT, "negative_prompt": "", "steps": STEPS, "guidance": GUIDANCE,
            "noise_level": NOISE_LEVEL, "torch": torch.__version__, "diffusers": diffusers.__version__,
            "generator": "tools/reference/make_upscaler_fixtures.py"}
    tensors = {"image": image, "upscaler_condition": condition, "upscaler_initial": initial,
               "cond": cond, "uncond": uncond, "latents": latents, "decoded": decoded}
    save_file({k: v.double().contiguous() for k, v in tensors.items()},
              os.path.join(args.out, "upscaler_io.safetensors"),
              metadata={"fixture": json.dumps(meta, sort_keys=True)})


if __name__ == "__main__":
    main()
