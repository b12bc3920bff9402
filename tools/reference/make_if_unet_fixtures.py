#!/usr/bin/env python3
"""Golden fixtures for the DeepFloyd-IF UNet (diffusers `UNet2DConditionModel`).

Builds two tiny, seeded, randomly initialised UNets with diffusers' own constructor, configured
like IF-I-XL and IF-II-L (same config field set as the real checkpoints, see
../shared/spec/checkpoints/IF-*.unet.json, only smaller), saves them with `save_pretrained` (the
real key names and file layouts: single file, sharded + index.json, fp16 variant), and stores
seeded inputs plus float64 expected outputs and vector-Jacobian products next to them, so the
Rust tests can check the loader, the forward pass and the backward pass without Python.

Output (default tests/fixtures/if_unet/ in the repository):
    stage1/            IF-I-like UNet, f32, diffusion_pytorch_model.safetensors + config.json
    stage1_sharded/    the same weights split into >= 2 shards + diffusion_pytorch_model.safetensors.index.json
    stage2/            IF-II-like UNet, f32 file and the fp16 variant diffusion_pytorch_model.fp16.safetensors
    stage1_io.safetensors, stage2_io.safetensors   inputs and expected outputs (see IO_DOC below)

Run from the repository root:
    /work/venv/ref/bin/python tools/reference/make_if_unet_fixtures.py
"""
import argparse
import copy
import json
import os
import shutil
import sys

import torch

import diffusers
from diffusers import UNet2DConditionModel
from safetensors import safe_open
from safetensors.torch import save_file

IO_DOC = """\
Inputs (float32 unless noted, drawn from a seeded torch.Generator):
  sample [B,C,H,W], timestep [B] int64, encoder_hidden_states [B,L,encoder_hid_dim],
  class_labels [B] int64 (stage 2 only: the noise level), cotangent [B,out_channels,H,W].
Expected (float64): the saved f32 weights and the inputs, both cast to float64, run by diffusers:
  out_sample = unet(sample, timestep, encoder_hidden_states, class_labels).sample
  grad_sample, grad_encoder_hidden_states = VJP of <out_sample, cotangent> w.r.t. those inputs.
Stage 2 also: *_fp16w = the same with the weights rounded to fp16 first (the fp16 variant file),
  i.e. what an f32 engine computing with f16 weights should approach.
diffusers computes two things in float32 even in a float64 model: the timestep/class-label
  sinusoid (get_timestep_embedding) and the AttentionPooling softmax; the goldens include that."""

# Fields of the real IF configs (../shared/spec/checkpoints/IF-*-v1.0.unet.json), values shrunk.
# Choices that matter for testing:
# - norm_num_groups 4 (real 32) so a group holds several channels and differs from the 32 groups
#   diffusers hard-codes for `norm_cross` (cross_attention_norm_num_groups is not a UNet field);
# - cross_attention_dim 64 = 2 channels per norm_cross group; encoder_hid_dim 48 != cross dim, so
#   encoder_hid_proj is not square; addition_embed_type_num_heads 3 -> 16 dims per pooling head;
# - attention_head_dim 8 is a per-head DIM (heads = channels / 8), as in the real configs;
# - stage 2: layers_per_block a non-palindromic list (up blocks use it reversed, +1),
#   time_embedding_dim 32 != 4 * block_out_channels[0], and block types ordered so that the two
#   models together have every block kind both with and without its down/up-sampler.
STAGE1 = dict(
    sample_size=16,
    in_channels=3,
    out_channels=6,
    layers_per_block=1,
    block_out_channels=[16, 24],
    down_block_types=["ResnetDownsampleBlock2D", "SimpleCrossAttnDownBlock2D"],
    up_block_types=["SimpleCrossAttnUpBlock2D", "ResnetUpsampleBlock2D"],
    mid_block_type="UNetMidBlock2DSimpleCrossAttn",
    cross_attention_dim=64,
    cross_attention_norm="group_norm",
    encoder_hid_dim=48,
    encoder_hid_dim_type="text_proj",
    attention_head_dim=8,
    addition_embed_type="text",
    addition_embed_type_num_heads=3,
    resnet_time_scale_shift="scale_shift",
    act_fn="gelu",
    norm_num_groups=4,
    norm_eps=1e-05,
    resnet_skip_time_act=False,
    resnet_out_scale_factor=1.0,
    mid_block_scale_factor=1,
    only_cross_attention=False,
    upcast_attention=False,
    flip_sin_to_cos=True,
    freq_shift=0,
)

SQRT2ISH = 1.4142271248762552  # the real IF-II value (not exactly sqrt(2))
STAGE2 = dict(
    sample_size=32,
    in_channels=6,
    out_channels=6,
    layers_per_block=[2, 2, 1],
    block_out_channels=[16, 16, 24],
    down_block_types=["ResnetDownsampleBlock2D", "SimpleCrossAttnDownBlock2D", "ResnetDownsampleBlock2D"],
    up_block_types=["ResnetUpsampleBlock2D", "SimpleCrossAttnUpBlock2D", "ResnetUpsampleBlock2D"],
    mid_block_type="UNetMidBlock2DSimpleCrossAttn",
    cross_attention_dim=64,
    cross_attention_norm="group_norm",
    encoder_hid_dim=48,
    encoder_hid_dim_type="text_proj",
    attention_head_dim=8,
    addition_embed_type="text",
    addition_embed_type_num_heads=3,
    resnet_time_scale_shift="scale_shift",
    act_fn="gelu",
    norm_num_groups=4,
    norm_eps=1e-05,
    resnet_skip_time_act=True,
    resnet_out_scale_factor=SQRT2ISH,
    mid_block_scale_factor=SQRT2ISH,
    only_cross_attention=False,
    upcast_attention=False,
    flip_sin_to_cos=True,
    freq_shift=0,
    class_embed_type="timestep",
    time_embedding_dim=32,
    time_embedding_act_fn="gelu",
)

# Input shapes and values. H, W non-square and not powers of two; they only need to be multiples
# of 2**(number of downsamplers): 2 for stage 1, 4 for stage 2 (stage 2's bottom level is 3x5).
BATCH, TOKENS, HEIGHT, WIDTH = 2, 7, 12, 20
STAGE1_TIMESTEPS = [981, 47]
STAGE2_TIMESTEPS = [760, 15]
STAGE2_NOISE_LEVELS = [250, 100]
MODEL_SEEDS = {"stage1": 0, "stage2": 1}
INPUT_SEEDS = {"stage1": 1000, "stage2": 2000}
SHARD_SIZE = "200KB"  # stage 1 is ~0.65 MB in f32 -> 4 shards
SIZE_BUDGET = 3_000_000


def build(config, seed):
    torch.manual_seed(seed)
    model = UNet2DConditionModel(**config)
    return model.eval()


def make_inputs(config, seed, timesteps, noise_levels):
    g = torch.Generator().manual_seed(seed)
    io = {
        "sample": torch.randn(BATCH, config["in_channels"], HEIGHT, WIDTH, generator=g),
        "timestep": torch.tensor(timesteps, dtype=torch.int64),
        "encoder_hidden_states": torch.randn(BATCH, TOKENS, config["encoder_hid_dim"], generator=g),
        "cotangent": torch.randn(BATCH, config["out_channels"], HEIGHT, WIDTH, generator=g),
    }
    if noise_levels is not None:
        io["class_labels"] = torch.tensor(noise_levels, dtype=torch.int64)
    return io


def forward(model, io, dtype, requires_grad=False):
    sample = io["sample"].to(dtype).requires_grad_(requires_grad)
    ctx = io["encoder_hidden_states"].to(dtype).requires_grad_(requires_grad)
    out = model(sample, io["timestep"], encoder_hidden_states=ctx, class_labels=io.get("class_labels")).sample
    return out, sample, ctx


def golden(model, io, suffix=""):
    """Forward and VJP in float64; returns {name+suffix: float64 tensor}."""
    m = copy.deepcopy(model).double()
    out, sample, ctx = forward(m, io, torch.float64, requires_grad=True)
    gs, gc = torch.autograd.grad(out, [sample, ctx], io["cotangent"].double())
    res = {"out_sample": out.detach(), "grad_sample": gs, "grad_encoder_hidden_states": gc}

    # Directional finite-difference checks of the VJP (float64, central differences, one seeded
    # random direction per input). Error measured against |grad|*|d| (the directional derivative
    # itself can be small by cancellation). The encoder_hidden_states path goes through diffusers'
    # float32 AttentionPooling softmax, whose rounding is noise for a small step: larger step there.
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for key, grad, eps, tol in [("sample", gs, 1e-6, 1e-8), ("encoder_hidden_states", gc, 1e-3, 1e-5)]:
            d = torch.randn(grad.shape, generator=g, dtype=torch.float64)

            def f(step):
                io2 = dict(io, **{key: io[key].double() + step * d})
                o, _, _ = forward(m, io2, torch.float64)
                return (o * io["cotangent"].double()).sum().item()

            fd = (f(eps) - f(-eps)) / (2 * eps)
            ad = (grad * d).sum().item()
            rel = abs(fd - ad) / (grad.norm() * d.norm()).item()
            print(f"    finite differences{suffix}, {key}: autograd {ad:.10g}  fd {fd:.10g}  rel err {rel:.1e}")
            assert rel < tol, f"VJP w.r.t. {key} disagrees with finite differences"
    return {k + suffix: v for k, v in res.items()}


def rel_err(a, b):
    return ((a.double() - b.double()).abs().max() / b.double().abs().max()).item()


def stats(name, t):
    t = t.double()
    assert torch.isfinite(t).all(), f"{name} has non-finite values"
    print(f"    {name:34s} {str(list(t.shape)):18s} rms {t.pow(2).mean().sqrt():.4g}  max|.| {t.abs().max():.4g}")


def n_params(model):
    return sum(p.numel() for p in model.parameters())


def save_io(path, io, expected, meta):
    tensors = {k: v.contiguous() for k, v in io.items()}
    tensors.update({k: v.double().contiguous() for k, v in expected.items()})
    # One metadata key: safetensors writes the metadata map in random order, so several keys would
    # make regenerated files differ byte-wise from run to run.
    save_file(tensors, path, metadata={"fixture": json.dumps(meta, sort_keys=True)})


def run_stage(name, config, out_dir, timesteps, noise_levels, fp16_variant, sharded_copy):
    print(f"== {name}")
    model = build(config, MODEL_SEEDS[name])
    print(f"    params: {n_params(model):,}")

    model_dir = os.path.join(out_dir, name)
    model.save_pretrained(model_dir, safe_serialization=True)
    if sharded_copy:
        sharded_dir = os.path.join(out_dir, name + "_sharded")
        model.save_pretrained(sharded_dir, safe_serialization=True, max_shard_size=SHARD_SIZE)
        shards = [f for f in os.listdir(sharded_dir) if f.endswith(".safetensors")]
        assert len(shards) >= 2 and os.path.exists(
            os.path.join(sharded_dir, "diffusion_pytorch_model.safetensors.index.json")), shards
        print(f"    {name}_sharded: {len(shards)} shards")
        reloaded = UNet2DConditionModel.from_pretrained(sharded_dir)
        for (k, a), (_, b) in zip(model.state_dict().items(), reloaded.state_dict().items()):
            assert torch.equal(a, b), k
    if fp16_variant:
        half = copy.deepcopy(model).half()
        half.save_pretrained(model_dir, safe_serialization=True, variant="fp16")
        assert os.path.exists(os.path.join(model_dir, "diffusion_pytorch_model.safetensors"))

    io = make_inputs(config, INPUT_SEEDS[name], timesteps, noise_levels)
    expected = golden(model, io)
    if fp16_variant:
        model_fp16w = copy.deepcopy(model).half().float()
        with safe_open(os.path.join(model_dir, "diffusion_pytorch_model.fp16.safetensors"), "pt") as f:
            for k, v in model_fp16w.state_dict().items():
                assert torch.equal(f.get_tensor(k).float(), v), k
        expected.update(golden(model_fp16w, io, suffix="_fp16w"))

    # What an f32 computation gets (guidance for the Rust tolerances).
    out32, s32, c32 = forward(model, io, torch.float32, requires_grad=True)
    gs32, gc32 = torch.autograd.grad(out32, [s32, c32], io["cotangent"])
    print(f"    torch f32 vs f64 golden (max abs err / max abs): out {rel_err(out32, expected['out_sample']):.2e}"
          f"  grad_sample {rel_err(gs32, expected['grad_sample']):.2e}"
          f"  grad_ehs {rel_err(gc32, expected['grad_encoder_hidden_states']):.2e}")
    if fp16_variant:
        for k in ["out_sample", "grad_sample", "grad_encoder_hidden_states"]:
            print(f"    fp16-rounded weights vs f32 weights, {k}: {rel_err(expected[k + '_fp16w'], expected[k]):.2e}")

    for k, v in list(io.items()) + list(expected.items()):
        if v.is_floating_point():
            stats(k, v)
        else:
            print(f"    {k:34s} {str(list(v.shape)):18s} {v.tolist()}")

    meta = {
        "model_dir": name,
        "description": IO_DOC,
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "generator": "tools/reference/make_if_unet_fixtures.py",
    }
    save_io(os.path.join(out_dir, f"{name}_io.safetensors"), io, expected, meta)
    return model_dir


def config_report(model_dir, real_config_path):
    saved = json.load(open(os.path.join(model_dir, "config.json")))
    if os.path.exists(real_config_path):
        real = json.load(open(real_config_path))["config"]
        missing = sorted(set(real) - set(saved))
        added = sorted(set(saved) - set(real))
        assert not missing, f"saved config lacks real fields {missing}"
        print(f"    config.json: {len(saved)} fields; every real field present; added by diffusers: {added}")


def main():
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(repo, "tests", "fixtures", "if_unet"))
    ap.add_argument("--spec", default=os.path.join(repo, "..", "shared", "spec", "checkpoints"),
                    help="folder with IF-*-v1.0.unet.json, to check that every real config field is kept")
    args = ap.parse_args()

    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)  # bitwise-reproducible CPU reductions
    os.makedirs(args.out, exist_ok=True)
    for entry in ["stage1", "stage1_sharded", "stage2"]:
        shutil.rmtree(os.path.join(args.out, entry), ignore_errors=True)
    for entry in ["stage1_io.safetensors", "stage2_io.safetensors"]:
        if os.path.exists(os.path.join(args.out, entry)):
            os.remove(os.path.join(args.out, entry))

    print(f"torch {torch.__version__}, diffusers {diffusers.__version__}, python {sys.version.split()[0]}")
    d1 = run_stage("stage1", STAGE1, args.out, STAGE1_TIMESTEPS, None, fp16_variant=False, sharded_copy=True)
    config_report(d1, os.path.join(args.spec, "IF-I-XL-v1.0.unet.json"))
    d2 = run_stage("stage2", STAGE2, args.out, STAGE2_TIMESTEPS, STAGE2_NOISE_LEVELS,
                   fp16_variant=True, sharded_copy=False)
    config_report(d2, os.path.join(args.spec, "IF-II-L-v1.0.unet.json"))

    print("== files")
    total = 0
    for root, _, files in sorted(os.walk(args.out)):
        for f in sorted(files):
            p = os.path.join(root, f)
            total += os.path.getsize(p)
            print(f"    {os.path.getsize(p):>9,}  {os.path.relpath(p, args.out)}")
    print(f"    {total:>9,}  total")
    if total > SIZE_BUDGET:
        print(f"WARNING: fixtures exceed {SIZE_BUDGET:,} bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
