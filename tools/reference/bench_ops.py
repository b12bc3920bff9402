#!/usr/bin/env python3
"""Time the bench binary's op workloads in PyTorch on this machine's CPU (or CUDA with --device cuda).

Prints one JSON object {workload: milliseconds}; the bench binary reads it from the file named by
ITERINV_TORCH_TIMES and prints the ratio. Workload names and shapes must match benches/ops.rs.

    python3 -m venv venv && venv/bin/pip install torch diffusers   # diffusers: the UNet rows
    venv/bin/python tools/reference/bench_ops.py [--if-m] > /tmp/torch_ops.json
    ITERINV_TORCH_TIMES=/tmp/torch_ops.json cargo bench --bench ops
"""
import argparse
import json
import os
import time

import torch
import torch.nn.functional as F


def timed(fn, device, min_seconds=1.0, min_iters=3):
    fn()  # warm-up
    if device == "cuda":
        torch.cuda.synchronize()
    iters, start = 0, time.perf_counter()
    while True:
        fn()
        iters += 1
        if device == "cuda":
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds and iters >= min_iters:
            return 1000.0 * elapsed / iters


REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def unet_times(dev, if_m):
    """The bench's UNet rows (benches/ops/unet.rs): the stage-1 test fixture at B2 64 px with 77
    text tokens, forward and forward + VJP w.r.t. sample and text; with if_m, IF-I-XL's config at
    IF-I-M's widths with random weights, in fp32 and fp16. Skipped without diffusers."""
    try:
        from diffusers import UNet2DConditionModel
    except ImportError:
        return {}
    fixtures = os.path.join(REPO, "tests", "fixtures")
    models = [("tiny", UNet2DConditionModel.from_pretrained(os.path.join(fixtures, "if_unet", "stage1")), 48)]
    if if_m:
        with open(os.path.join(fixtures, "checkpoints", "IF-I-XL-v1.0.unet.json")) as f:
            config = json.load(f)["config"]
        config.update(block_out_channels=[192, 384, 576, 768], cross_attention_dim=768)
        models.append(("m", UNet2DConditionModel.from_config(config), 4096))
    out = {}
    for name, unet, text_dim in models:
        dtypes = [torch.float32] + ([torch.float16] if name == "m" and dev == "cuda" else [])
        for dtype in dtypes:
            unet = unet.to(dev, dtype)
            suffix = "" if dtype == torch.float32 else "_fp16"
            sample = torch.randn(2, 3, 64, 64, device=dev, dtype=dtype)
            text = torch.randn(2, 77, text_dim, device=dev, dtype=dtype)
            cot = torch.randn(2, 6, 64, 64, device=dev, dtype=dtype)
            t = torch.tensor([981, 47], device=dev)

            def fwd():
                with torch.no_grad():
                    return unet(sample, t, text).sample

            def fwd_vjp():
                s, e = sample.clone().requires_grad_(), text.clone().requires_grad_()
                return torch.autograd.grad(unet(s, t, e).sample, [s, e], cot)

            out[f"if_unet_{name}_fwd_b2_64{suffix}"] = timed(fwd, dev)
            out[f"if_unet_{name}_fwd_vjp_b2_64{suffix}"] = timed(fwd_vjp, dev)
    return out


def upscaler_times(dev):
    """The bench's x4-upscaler rows (benches/ops/unet.rs): the tiny SD-block UNet fixture at B2 on a
    64x64 latent (7 input channels, noise levels 7 and 42 as class labels, 77 tokens of width 20),
    forward and forward + VJP; the tiny VAE fixture decoding a B2 64x64 latent. Skipped without
    diffusers."""
    try:
        from diffusers import AutoencoderKL, UNet2DConditionModel
    except ImportError:
        return {}
    fixtures = os.path.join(REPO, "tests", "fixtures")
    unet = UNet2DConditionModel.from_pretrained(os.path.join(fixtures, "sd_unet", "upscaler")).to(dev)
    sample = torch.randn(2, 7, 64, 64, device=dev)
    text = torch.randn(2, 77, 20, device=dev)
    cot = torch.randn(2, 4, 64, 64, device=dev)
    t = torch.tensor([981, 47], device=dev)
    labels = torch.tensor([7, 42], device=dev)

    def fwd():
        with torch.no_grad():
            return unet(sample, t, text, class_labels=labels).sample

    def fwd_vjp():
        s, e = sample.clone().requires_grad_(), text.clone().requires_grad_()
        return torch.autograd.grad(unet(s, t, e, class_labels=labels).sample, [s, e], cot)

    vae = AutoencoderKL.from_pretrained(os.path.join(fixtures, "vae", "vae")).to(dev)
    latent = torch.randn(2, 4, 64, 64, device=dev)

    def decode():
        with torch.no_grad():
            return vae.decode(latent).sample

    return {
        "sd_unet_tiny_fwd_b2_64": timed(fwd, dev),
        "sd_unet_tiny_fwd_vjp_b2_64": timed(fwd_vjp, dev),
        "vae_tiny_decode_b2_64": timed(decode, dev),
    }


def x4_times(dev):
    """The bench's real-shape x4 upscaler rows (ITERINV_BENCH_X4=1): the real UNet config with random
    weights at batch 1 on a 64x64 latent (noise level 100, 77 tokens of 1024), forward and forward +
    VJP, and the real VAE config decoding a 64x64 latent; fp32, and fp16 as *_fp16 on CUDA."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    specs = os.path.join(REPO, "tests", "fixtures", "checkpoints")
    load = lambda name: json.load(open(os.path.join(specs, name)))["config"]
    unet = UNet2DConditionModel.from_config(load("stable-diffusion-x4-upscaler.unet.json"))
    vae = AutoencoderKL.from_config(load("stable-diffusion-x4-upscaler.vae.json"))
    out = {}
    for dtype in [torch.float32] + ([torch.float16] if dev == "cuda" else []):
        suffix = "" if dtype == torch.float32 else "_fp16"
        unet, vae = unet.to(dev, dtype), vae.to(dev, dtype)
        sample = torch.randn(1, 7, 64, 64, device=dev, dtype=dtype)
        text = torch.randn(1, 77, 1024, device=dev, dtype=dtype)
        cot = torch.randn(1, 4, 64, 64, device=dev, dtype=dtype)
        latent = torch.randn(1, 4, 64, 64, device=dev, dtype=dtype)
        t, labels = torch.tensor([981], device=dev), torch.tensor([100], device=dev)

        def fwd():
            with torch.no_grad():
                return unet(sample, t, text, class_labels=labels).sample

        def fwd_vjp():
            s, e = sample.clone().requires_grad_(), text.clone().requires_grad_()
            return torch.autograd.grad(unet(s, t, e, class_labels=labels).sample, [s, e], cot)

        def decode():
            with torch.no_grad():
                return vae.decode(latent).sample

        out[f"x4_unet_fwd_b1_64{suffix}"] = timed(fwd, dev)
        out[f"x4_unet_fwd_vjp_b1_64{suffix}"] = timed(fwd_vjp, dev)
        out[f"x4_vae_decode_b1_64{suffix}"] = timed(decode, dev)
    return out


def t5_times(dev, xxl):
    """The bench's T5 rows (benches/ops/t5.rs): 2 prompts of 12 and 30 tokens padded to 77."""
    try:
        from transformers import T5Config, T5EncoderModel
    except ImportError:
        return {}
    fixtures = os.path.join(REPO, "tests", "fixtures")
    models = [("tiny", T5EncoderModel.from_pretrained(os.path.join(fixtures, "t5", "text_encoder")))]
    if xxl:
        with open(os.path.join(fixtures, "checkpoints", "t5-v1_1-xxl.encoder.json")) as f:
            models.append(("xxl", T5EncoderModel(T5Config(**json.load(f)["config"]))))
    out = {}
    for name, model in models:
        vocab = model.config.vocab_size
        ids = torch.zeros(2, 77, dtype=torch.long)
        mask = torch.zeros(2, 77, dtype=torch.long)
        for row, (n, seed) in enumerate([(12, 3), (30, 11)]):
            ids[row, :n] = (torch.arange(n) * 7919 + seed) % vocab
            mask[row, :n] = 1
        ids, mask = ids.to(dev), mask.to(dev)
        dtypes = [torch.float32] + ([torch.float16] if name == "xxl" and dev == "cuda" else [])
        for dtype in dtypes:
            model = model.to(dev, dtype).eval()
            suffix = "" if dtype == torch.float32 else "_fp16"

            def run():
                with torch.no_grad():
                    return model(input_ids=ids, attention_mask=mask).last_hidden_state

            out[f"t5_{name}_b2_77{suffix}"] = timed(run, dev)
    return out


def inversion_times(dev):
    """The bench's inversion rows (benches/ops/invert.rs): one NTI inner iteration at stage I
    (guidance 3, null embedding tracked, DDIM step with IF's thresholding, sum loss, Adam) and one
    IterInv inner iteration at stage II (latent tracked), at t = 500 of 50 DDIM steps, on the
    tiny cascade fixture."""
    try:
        from diffusers import DDIMScheduler, UNet2DConditionModel
    except ImportError:
        return {}
    root = os.path.join(REPO, "tests", "fixtures", "cascade")
    out = {}
    t = 500

    def stage(name):
        unet = UNet2DConditionModel.from_pretrained(os.path.join(root, name, "unet")).to(dev)
        sched = DDIMScheduler.from_pretrained(os.path.join(root, name, "scheduler"))
        sched.set_timesteps(50)
        return unet, sched

    unet1, s1 = stage("stage1")
    cond = torch.randn(1, 77, 64, device=dev)
    null = torch.zeros(1, 77, 64, device=dev, requires_grad=True)
    x1, target1 = torch.randn(1, 3, 16, 16, device=dev), torch.randn(1, 3, 16, 16, device=dev)
    adam = torch.optim.Adam([null], lr=1e-3)

    def nti():
        o = unet1(torch.cat([x1, x1]), t, torch.cat([null, cond])).sample
        u, c = o.chunk(2)
        eps = u[:, :3] + 3.0 * (c[:, :3] - u[:, :3])
        prev = s1.step(eps, t, x1).prev_sample
        loss = ((prev - target1) ** 2).sum()
        adam.zero_grad()
        loss.backward()
        adam.step()

    out["nti_inner_iter_tiny_16"] = timed(nti, dev)
    unet2, s2 = stage("stage2")
    up = torch.randn(1, 3, 32, 32, device=dev)
    text = torch.randn(1, 77, 64, device=dev)
    z, target2 = torch.randn(1, 3, 32, 32, device=dev), torch.randn(1, 3, 32, 32, device=dev)
    level = torch.tensor([250], device=dev)

    def iterinv():
        zr = z.clone().requires_grad_()
        o = unet2(torch.cat([zr, up], 1), t, text, class_labels=level).sample
        prev = s2.step(o[:, :3], t, zr).prev_sample
        g, = torch.autograd.grad(((prev - target2) ** 2).sum(), zr)
        return z - 0.3 * g

    out["iterinv_inner_iter_tiny_32"] = timed(iterinv, dev)
    return out


def op_times(dev, dtype, large):
    """The bench's op and block rows (benches/ops/main.rs) with tensors of `dtype`; with `large`,
    matmul 4096^3 too."""
    g = lambda *s: torch.randn(*s, device=dev, dtype=dtype)
    out = {}
    with torch.no_grad():
        a, b = g(1024, 1024), g(1024, 1024)
        out["matmul_1024_f32"] = timed(lambda: a @ b, dev)
        # f16 weights, f32 math: what iterinv computes (PyTorch has no such mixed CPU kernel, so
        # the widening is timed with it).
        bh = b.half()
        out["matmul_1024_f16w"] = timed(lambda: a @ bh.to(dtype), dev)
        if large:
            a4, b4 = g(4096, 4096), g(4096, 4096)
            out["matmul_4096"] = timed(lambda: a4 @ b4, dev)
        x, w, bias = g(2, 256, 64, 64), g(256, 256, 3, 3), g(256)
        out["conv3x3_b2_256_64"] = timed(lambda: F.conv2d(x, w, bias, padding=1), dev)
        q = g(2, 16, 1024, 64)
        k, v = g(2, 16, 1024 + 77, 64), g(2, 16, 1024 + 77, 64)
        out["attention_b2_h16_1024x1101_d64"] = timed(lambda: F.scaled_dot_product_attention(q, k, v), dev)
    # Blocks: forward plus the input gradient, weights constant (as IterInv differentiates).
    x = g(2, 256, 64, 64).requires_grad_()
    gamma = torch.ones(256, device=dev, dtype=dtype)
    beta = torch.zeros(256, device=dev, dtype=dtype)
    w, bias, cot = g(256, 256, 3, 3) * 0.02, g(256), g(2, 256, 64, 64)

    def conv_block():
        h = F.conv2d(F.silu(F.group_norm(x, 32, gamma, beta, 1e-5)), w, bias, padding=1)
        return torch.autograd.grad(x + h, x, cot)[0]

    out["conv_block_fwd_bwd_b2_256_64"] = timed(conv_block, dev)
    l, c, heads = 1024, 512, 8
    xt = g(2, l, c).requires_grad_()
    ctx = g(2, 77, c)
    ws = [g(c, c) * 0.04 for _ in range(4)]
    cot_t = g(2, l, c)

    def attention_block():
        split = lambda t: t.reshape(2, -1, heads, c // heads).transpose(1, 2)
        q = split(xt @ ws[0].T)
        k = torch.cat([split(ctx @ ws[1].T), split(xt @ ws[1].T)], dim=2)
        v = torch.cat([split(ctx @ ws[2].T), split(xt @ ws[2].T)], dim=2)
        a = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(2, l, c)
        return torch.autograd.grad(xt + a @ ws[3].T, xt, cot_t)[0]

    out["attention_block_fwd_bwd_b2_1024_c512"] = timed(attention_block, dev)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--if-m", action="store_true",
                    help="also time the IF-I-M-shaped UNet (fp32, and fp16 as *_fp16)")
    ap.add_argument("--x4", action="store_true",
                    help="also time the real SD x4 upscaler's UNet and VAE (random weights, 64x64 latent)")
    ap.add_argument("--large", action="store_true",
                    help="also time matmul 4096^3 (fp32, and fp16 as *_fp16 on CUDA)")
    ap.add_argument("--t5-xxl", action="store_true",
                    help="also time the T5-XXL-shaped encoder (fp32, and fp16 as *_fp16)")
    args = ap.parse_args()
    dev = args.device
    torch.manual_seed(0)
    out = {}
    # fp32 everywhere; on CUDA the op rows again in fp16 as *_fp16 (what iterinv's f16 products
    # run against: ITERINV_PRECISION=f16).
    for dtype in [torch.float32] + ([torch.float16] if dev == "cuda" else []):
        suffix = "" if dtype == torch.float32 else "_fp16"
        out.update({k + suffix: v for k, v in op_times(dev, dtype, args.large).items()})
    out.update(unet_times(dev, args.if_m))
    out.update(upscaler_times(dev))
    if args.x4:
        out.update(x4_times(dev))
    out.update(t5_times(dev, args.t5_xxl))
    out.update(inversion_times(dev))
    out["_machine"] = f"torch {torch.__version__}, {dev}, {torch.get_num_threads()} threads"
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
