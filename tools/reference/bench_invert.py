#!/usr/bin/env python3
"""PyTorch timings of a whole-photo inversion on the tiny trained IF cascade, for the invert rows of
`cargo bench --bench ops` (ITERINV_BENCH_INVERT=1, benches/ops/invert_photo.rs).

Run from the repository root (CPU, about 2 minutes):
    /work/venv/ref/bin/python tools/reference/bench_invert.py > /tmp/torch_invert.json

The reference recipe of the IterInv code, 50 DDIM steps, float32, torch's default threads, on
tests/photos/chelsea.png with "a photo of a cat" (the loops are make_inversion_fixtures.py's Stage,
the ones the engine's goldens come from, run here in float32 at 50 steps):
  stage I:  DDIM inversion at guidance 1, then NTI: 51 Adam steps per timestep (lr 1e-3 (1 - i/100)),
            guidance 3, sum loss, through the scheduler's DDIM step with IF's thresholding;
  stage II: faithful IterInv: 21 gradient steps per timestep of 0.3 sqrt(linspace(1, 0.5, 50)) on
            the latent, guidance 1, the DDIM step without thresholding or clipping (iterinv's stage-II
            default), condition = the stage-I input upscaled (bilinear, align_corners) and noised at
            level 250.
Only the loops are timed (not loading or encoding). Prints a flat JSON object of milliseconds keyed
like the bench's rows, plus the PSNRs of the reconstructions as a check that the loops do what
iterinv's do, and "_machine".
"""
import json
import math
import os
import sys
import time

import torch
import torch.nn.functional as F
from diffusers import IFPipeline, IFSuperResolutionPipeline

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_inversion_fixtures as M  # noqa: E402
from train_tiny_cascade import PROMPTS, load_photo  # noqa: E402

CASCADE = "tests/fixtures/trained_cascade"
PHOTO = "tests/fixtures/photos/chelsea.png"


def main():
    # The fixture script's loops, in float32 at the reference's 50 steps.
    M.F64, M.STEPS = torch.float32, 50
    p1 = IFPipeline.from_pretrained(os.path.join(CASCADE, "stage1"))
    p2 = IFSuperResolutionPipeline.from_pretrained(os.path.join(CASCADE, "stage2"))
    with torch.no_grad():
        cond, null = p1.encode_prompt(PROMPTS["chelsea"], do_classifier_free_guidance=True,
                                      negative_prompt=None, device=torch.device("cpu"), clean_caption=False)
    x16, x32 = load_photo(PHOTO, 16).float(), load_photo(PHOTO, 32).float()
    out = {}

    s1 = M.Stage(p1.unet, p1.scheduler.config)
    t0 = time.perf_counter()
    trace = s1.ddim_invert(x16, cond)
    nulls, _ = s1.nti(trace, cond, null, guidance=3.0, inner_steps=51, lr=1e-3)
    out["invert_stage1_nti_tiny"] = 1000 * (time.perf_counter() - t0)
    rec1 = s1.reconstruct(trace[-1], cond, nulls, guidance=3.0)

    up = F.interpolate(x16, (32, 32), mode="bilinear", align_corners=True)
    noise = torch.randn(up.shape, generator=torch.Generator().manual_seed(0))
    condition = p2.image_noising_scheduler.add_noise(up, noise, torch.tensor([M.NOISE_LEVEL]))
    config = dict(p2.scheduler.config, thresholding=False, clip_sample=False)
    s2 = M.Stage(p2.unet, config, low_res=condition)
    t0 = time.perf_counter()
    z_t, _ = s2.iterinv(x32, cond, inner_steps=21, step_size=0.3)
    out["invert_stage2_iterinv_faithful_tiny"] = 1000 * (time.perf_counter() - t0)
    rec2 = s2.reconstruct(z_t, cond)

    out["_psnr_stage1_nti_db"] = round(M.psnr(rec1.clamp(-1, 1), x16), 2)
    out["_psnr_stage2_iterinv_faithful_db"] = round(M.psnr(rec2.clamp(-1, 1), x32), 2)
    out["_machine"] = f"torch {torch.__version__}, cpu, {torch.get_num_threads()} threads"
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
