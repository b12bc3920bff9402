#!/usr/bin/env python3
"""PyTorch timings of a whole-image inversion on the tiny trained IF cascade, for the rows of
`cargo bench --bench ops` with ITERINV_BENCH_INVERT=1 (benches/ops/invert_image.rs).

Run from the repository root (CPU, about 2 minutes at 2 threads):
    /work/venv/ref/bin/python tools/reference/bench_invert.py > /tmp/torch_invert.json
    ITERINV_BENCH_INVERT=1 ITERINV_BENCH_ONLY=none ITERINV_TORCH_TIMES=/tmp/torch_invert.json \
        cargo bench --bench ops

The IterInv code's recipe on tests/fixtures/photos/chelsea.png with "a photo of a cat", 50 DDIM
steps, float32 (--dtype float64 for a rounding check), torch's default thread count (as
bench_ops.py; --threads N to set it), denormals kept as the CPU's default (--flush-denormal).
The loops are make_inversion_fixtures.py's Stage (the ones the engine's goldens come from), here at
50 steps:
  stage I:  DDIM inversion at guidance 1, then NTI: 51 Adam steps per timestep on the null embedding
            (lr 1e-3 (1 - i/100), a fresh Adam each timestep), guidance 3, sum loss, through
            diffusers' DDIMScheduler.step with IF's dynamic thresholding (the folder's config);
  stage II: faithful IterInv: 21 plain gradient steps per timestep on the latent, step
            0.3 sqrt(linspace(1, 0.5, 50)), guidance 1, DDIM step without thresholding or clipping
            (iterinv's stage-II default). Condition = the stage-I NTI reconstruction upscaled to 32 px
            (bilinear, align_corners) and noised at level 250 by the image-noising scheduler, as
            iterinv builds it; the noise draw is torch's (seed 0), not iterinv's, so the stage-II
            PSNRs can differ a little for that reason alone.
Only the loops are timed (stage I: DDIM inversion + NTI; stage II: IterInv), not loading, text
encoding or the reconstructions, as iterinv's StageReport.seconds. Prints one flat JSON object:
milliseconds under the bench's keys (merge-able with bench_ops.py's output), and, as a check that the
loops are the same algorithm, "_psnr_*" (reconstruction clamped to [-1, 1] against the input, data
range 2, as iterinv's report), "_iterations_*" and "_machine".
"""
import argparse
import json
import os
import sys
import time

import torch
import torch.nn.functional as F
from diffusers import IFPipeline, IFSuperResolutionPipeline

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_inversion_fixtures as M  # noqa: E402  (sibling script, main() guarded)
from train_tiny_cascade import PROMPTS, load_photo  # noqa: E402

CASCADE = "tests/fixtures/trained_cascade"
PHOTO = "tests/fixtures/photos/chelsea.png"
STEPS = 50
NTI = dict(guidance=3.0, inner_steps=51, lr=1e-3)
ITERINV = dict(inner_steps=21, step_size=0.3)
NOISE_SEED = 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    ap.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    ap.add_argument("--flush-denormal", action="store_true",
                    help="torch.set_flush_denormal(True): the NTI loop's last timesteps produce denormal "
                         "floats that slow the CPU's float32 several times over (GPUs flush them)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.flush_denormal:
        assert torch.set_flush_denormal(True), "this CPU cannot flush denormals"
    dtype = getattr(torch, args.dtype)
    # make_inversion_fixtures' Stage casts the UNet and alphas to its module-level F64 and sets up
    # STEPS timesteps: point both at this benchmark's settings.
    M.F64, M.STEPS = dtype, STEPS

    p1 = IFPipeline.from_pretrained(os.path.join(CASCADE, "stage1"))
    p2 = IFSuperResolutionPipeline.from_pretrained(os.path.join(CASCADE, "stage2"))
    with torch.no_grad():
        cond, null = p1.encode_prompt(PROMPTS["chelsea"], do_classifier_free_guidance=True, negative_prompt=None,
                                      device=torch.device("cpu"), clean_caption=False)
    cond, null = cond.to(dtype), null.to(dtype)
    x16, x32 = load_photo(PHOTO, 16).to(dtype), load_photo(PHOTO, 32).to(dtype)
    out = {}

    s1 = M.Stage(p1.unet, p1.scheduler.config)
    assert s1.timesteps == list(range(980, -1, -20)), s1.timesteps
    t0 = time.perf_counter()
    trace = s1.ddim_invert(x16, cond)
    nulls, _ = s1.nti(trace, cond, null, **NTI)
    out["invert_image_stage1_nti_tiny"] = 1000 * (time.perf_counter() - t0)
    with torch.no_grad():
        rec1 = s1.reconstruct(trace[-1], cond, nulls, NTI["guidance"])

    # IFSuperResolutionPipeline's conditioning, on the stage-I reconstruction (iterinv's
    # Stage2Model::condition; iterinv feeds the unclamped reconstruction too).
    up = F.interpolate(rec1, (32, 32), mode="bilinear", align_corners=True)
    noise = torch.randn(up.shape, generator=torch.Generator().manual_seed(NOISE_SEED), dtype=torch.float32)
    condition = p2.image_noising_scheduler.add_noise(up, noise.to(dtype), torch.tensor([M.NOISE_LEVEL]))
    config = dict(p2.scheduler.config, thresholding=False, clip_sample=False)
    s2 = M.Stage(p2.unet, config, low_res=condition)
    t0 = time.perf_counter()
    z_t, _ = s2.iterinv(x32, cond, **ITERINV)
    out["invert_image_stage2_iterinv_faithful_tiny"] = 1000 * (time.perf_counter() - t0)
    rec2 = s2.reconstruct(z_t, cond)

    suffix = "" if dtype == torch.float32 else "_float64"
    if suffix:  # a rounding check, not a timing to compare with iterinv's float32
        out = {k + suffix: v for k, v in out.items()}
    out["_psnr_stage1_nti_db" + suffix] = round(M.psnr(rec1.clamp(-1, 1), x16), 2)
    out["_psnr_stage2_iterinv_faithful_db" + suffix] = round(M.psnr(rec2.clamp(-1, 1), x32), 2)
    out["_iterations_stage1_nti"] = STEPS * NTI["inner_steps"]
    out["_iterations_stage2_iterinv_faithful"] = STEPS * ITERINV["inner_steps"]
    flush = ", denormals flushed" if args.flush_denormal else ""
    out["_machine"] = f"torch {torch.__version__}, cpu, {torch.get_num_threads()} threads, {args.dtype}{flush}"
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
