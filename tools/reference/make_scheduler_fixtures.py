#!/usr/bin/env python3
"""Golden fixtures for the engine's diffusion schedulers (engine/src/sched), from diffusers' own
DDPMScheduler and DDIMScheduler, run in float32 on the CPU exactly as the pipelines run them.

Run from the repository root (CPU, about a second, no network, byte-for-byte reproducible on an
x86-64 CPU with AVX2 or AVX-512, see "linspace" below):
    /work/venv/ref/bin/python tools/reference/make_scheduler_fixtures.py

Writes tests/fixtures/schedulers/ (deletes and recreates it):
    cases.json    every case: the scheduler_config.json text diffusers' save_config writes, the
                  step count or custom timesteps, the timestep, eta, which inputs, and where the
                  expected tensors are in tensors.bin ({"offset": in f32 elements, "shape"})
    tensors.bin   little-endian float32: the inputs, then every expected output

Inputs (torch.Generator seeded 20240611, float32)
- sample [2,3,6,6] = randn, sample[0] scaled by 0.6: at small t the 0.95-quantile of |x0| of
  sample 0 is about 1.2, inside (1, sample_max_value 1.5), so IF stage I's dynamic threshold s
  is the quantile itself there; sample 1's quantile (~2) is clamped to sample_max_value.
- model_output [2,6,6,6]: channels 0..3 randn (epsilon / v / x0), channels 3..6 uniform in
  [-1, 1) (the learned_range variance value, frac = (v + 1) / 2).
- model_output_learned [2,6,6,6]: the same first half, second half uniform in [0, 0.02): the
  variance itself for variance_type "learned" (diffusers takes its square root).
- noise [2,3,6,6] randn: DDPM's variance noise and DDIM's variance_noise (eta > 0).
- original [2,3,6,6] uniform in [-1, 1): add_noise's clean image.
Noise is passed, never drawn: DDPM's step draws with randn_tensor(model_output.shape, generator),
so the script monkeypatches diffusers' randn_tensor in scheduling_ddpm to return `noise`.

Configurations (the real ones from /work/shared/spec/models.md sections 2 and 4)
- IF stage I scheduler (diffusers scripts/convert_if.py for IF-I-XL-v1.0): DDPMScheduler(
  variance_type="learned_range", beta_schedule="squaredcos_cap_v2", prediction_type="epsilon",
  thresholding=True, dynamic_thresholding_ratio=0.95, sample_max_value=1.5); stage II the same
  with sample_max_value=1.0; IF's image_noising_scheduler DDPMScheduler(beta_schedule=
  "squaredcos_cap_v2") (add_noise at noise_level 250).
- DDIMScheduler.from_config of the IF configs (set_alpha_to_one True from DDIM's defaults).
  diffusers' DDIM step does not split a 6-channel output (it would fail to broadcast): the script
  passes model_output[:, :3]; the Rust test passes all 6 channels (the engine's DDIM ignores a
  second half, as IF's pipelines slice it off themselves) — "channels" in cases.json says which.
- stable-diffusion-x4-upscaler: scheduler DDIMScheduler(beta_schedule="scaled_linear",
  beta_start=0.0001, beta_end=0.02, prediction_type="v_prediction", set_alpha_to_one=False,
  steps_offset=1, clip_sample=False); low_res_scheduler DDPMScheduler(beta_schedule=
  "scaled_linear", beta_start=0.0001, beta_end=0.02, clip_sample=False) (add_noise, and a step).
- Variations of every option: spacings leading (steps_offset 0 and 1) / trailing / linspace,
  prediction epsilon / v_prediction / sample, variance fixed_small / fixed_small_log / fixed_large /
  learned / learned_range, clip_sample with ranges 1.0 / 0.8 / 0.5, thresholding on and off
  (ratios 0.95 / 0.995 / 0.9, max values 1.5 / 1.0 / 1.2 / 2.0), eta 0 / 0.3 / 0.5 / 0.7 / 1.0,
  DDPM custom timesteps (IF's fast27), DDPM without set_timesteps (prev = t - 1),
  rescale_betas_zero_snr, trained_betas, num_train_timesteps 999 and 10.

Timesteps: for each (spacing, steps_offset, num_train_timesteps) the full lists for a few step
counts and, for every step count n in 1..=num_train_timesteps, the checksum sum_i (i + 1) * t_i
(DDPMScheduler and DDIMScheduler give the same lists; the script asserts it). For "trailing",
np.arange(N, 0, -N/n) has n + 1 elements for some n (62 of the 1000 for N = 1000: the float
length N/(N/n) can come out as n + 1e-14 and is rounded up), and diffusers' schedule then ends in an extra timestep -1 (stepping at
it indexes alphas_cumprod[-1], i.e. the last one). Those n are listed in "extra_minus_one"; their
lists and checksums are of the n real timesteps, which is what the engine's schedule holds.

sqrt: torch's float32 sqrt (Tensor.sqrt and ** 0.5) is MKL's vsSqrt in high-accuracy mode, not
correctly rounded: about 0.6% of results are an ulp below IEEE sqrt, which the engine uses. Step
coefficients may therefore differ from diffusers' by an ulp (far inside the step tolerance), and
rescale_betas_zero_snr, whose betas are 1 - ratios of squared square roots, gives alphas_cumprod
that differ by up to ~3e-7 relative at a few timesteps (the Rust test allows 1e-6 relative there
and requires bit equality everywhere else).

linspace: torch.linspace(float32) on the CPU computes start + step*i (first half) and
end - step*(steps - 1 - i) (second half) with a fused multiply-add in its AVX2 / AVX-512 kernels
and without one in the baseline kernel (ATEN_CPU_CAPABILITY=default): the linear and
scaled_linear betas, hence alphas_cumprod, differ by an ulp between those. The fixtures (and the
engine) follow the FMA kernels, what diffusers computes on any current x86-64 CPU; the script
checks the CPU capability torch reports.
"""

import json
import os
import shutil
import sys
import tempfile

import numpy as np
import torch
from diffusers import DDIMScheduler, DDPMScheduler
from diffusers.pipelines.deepfloyd_if.timesteps import fast27_timesteps
from diffusers.schedulers import scheduling_ddpm

OUT = os.path.join("tests", "fixtures", "schedulers")

IF_STAGE1 = dict(
    variance_type="learned_range",
    beta_schedule="squaredcos_cap_v2",
    prediction_type="epsilon",
    thresholding=True,
    dynamic_thresholding_ratio=0.95,
    sample_max_value=1.5,
)
IF_STAGE2 = dict(IF_STAGE1, sample_max_value=1.0)
IF_NOISING = dict(beta_schedule="squaredcos_cap_v2")
SDX4_DDIM = dict(
    beta_schedule="scaled_linear",
    beta_start=0.0001,
    beta_end=0.02,
    prediction_type="v_prediction",
    set_alpha_to_one=False,
    steps_offset=1,
    clip_sample=False,
)
SDX4_LOWRES = dict(beta_schedule="scaled_linear", beta_start=0.0001, beta_end=0.02, clip_sample=False)


class Blob:
    """float32 tensors appended to one buffer, referenced by element offset and shape."""

    def __init__(self):
        self.parts = []
        self.size = 0

    def add(self, t):
        a = np.ascontiguousarray(t.detach().cpu().numpy().astype("<f4"))
        ref = {"offset": self.size, "shape": list(a.shape)}
        self.parts.append(a.tobytes())
        self.size += a.size
        return ref


class I(int):
    """An index into the schedule's timesteps (rather than a timestep)."""


def config_json(sched):
    """The scheduler_config.json text diffusers writes for `sched`."""
    with tempfile.TemporaryDirectory() as d:
        sched.save_config(d)
        with open(os.path.join(d, "scheduler_config.json")) as f:
            return f.read()


def make(kind, kwargs):
    if kind == "ddpm":
        return DDPMScheduler(**kwargs)
    return DDIMScheduler(**kwargs)


def make_ddim_from(kwargs):
    return DDIMScheduler.from_config(DDPMScheduler(**kwargs).config)


def main():
    cap = torch.backends.cpu.get_cpu_capability()
    if cap not in ("AVX2", "AVX512"):
        sys.exit(f"torch reports CPU capability {cap}: the fixtures follow the AVX2/AVX512 kernels")
    gen = torch.Generator().manual_seed(20240611)
    sample = torch.randn(2, 3, 6, 6, generator=gen)
    sample[0] *= 0.6
    eps = torch.randn(2, 3, 6, 6, generator=gen)
    var_range = torch.rand(2, 3, 6, 6, generator=gen) * 2 - 1
    var_learned = torch.rand(2, 3, 6, 6, generator=gen) * 0.02
    noise = torch.randn(2, 3, 6, 6, generator=gen)
    original = torch.rand(2, 3, 6, 6, generator=gen) * 2 - 1
    inputs_t = {
        "sample": sample,
        "model_output": torch.cat([eps, var_range], 1),
        "model_output_learned": torch.cat([eps, var_learned], 1),
        "noise": noise,
        "original": original,
    }
    blob = Blob()
    inputs = {k: blob.add(v) for k, v in inputs_t.items()}

    # DDPM draws its variance noise inside step(): hand it ours instead.
    def fixed_noise(shape, generator=None, device=None, dtype=None, **_):
        assert tuple(shape) == tuple(noise.shape), shape
        return noise.clone()

    scheduling_ddpm.randn_tensor = fixed_noise

    # (name, kind, scheduler kwargs or ("from_ddpm", kwargs), step count / custom timesteps / None,
    # timesteps to step at (I(k): the schedule's k-th, Python indexing), eta, model output, channels)
    step_specs = [
        ("if_stage1_ddpm", "ddpm", IF_STAGE1, 100, [990, 500, 10, 0], 0.0, "model_output", 6),
        ("if_stage2_ddpm", "ddpm", IF_STAGE2, 50, [980, 20, 0], 0.0, "model_output", 6),
        ("if_stage1_ddpm_fast27", "ddpm", IF_STAGE1, list(fast27_timesteps), [999, 800, 799, 22, 0], 0.0,
         "model_output", 6),
        ("if_stage1_ddpm_no_schedule", "ddpm", IF_STAGE1, None, [999, 500, 1, 0], 0.0, "model_output", 6),
        ("if_stage1_ddim", "ddim", ("from_ddpm", IF_STAGE1), 50, [980, 500, 0], 0.0, "model_output", 6),
        ("if_stage1_ddim_eta1", "ddim", ("from_ddpm", IF_STAGE1), 50, [980, 20, 0], 1.0, "model_output", 6),
        ("if_stage2_ddim_eta03", "ddim", ("from_ddpm", IF_STAGE2), 27, [I(0), I(-1)], 0.3, "model_output", 6),
        ("sdx4_ddim", "ddim", SDX4_DDIM, 75, [I(0), I(37), I(-1)], 0.0, "model_output", 3),
        ("sdx4_ddim_eta05", "ddim", SDX4_DDIM, 75, [I(0), I(-1)], 0.5, "model_output", 3),
        ("sdx4_lowres_ddpm", "ddpm", SDX4_LOWRES, 20, [950, 0], 0.0, "model_output", 3),
        ("ddpm_linear_trailing_clip", "ddpm",
         dict(beta_schedule="linear", timestep_spacing="trailing"), 7, [I(0), I(3), I(-1)], 0.0, "model_output", 3),
        ("ddpm_vpred_fixed_large_linspace", "ddpm",
         dict(beta_schedule="scaled_linear", variance_type="fixed_large", prediction_type="v_prediction",
              clip_sample=False, timestep_spacing="linspace"), 13, [I(0), I(6), I(-1)], 0.0, "model_output", 3),
        ("ddpm_learned_sample_clip08", "ddpm",
         dict(beta_schedule="squaredcos_cap_v2", variance_type="learned", prediction_type="sample",
              clip_sample_range=0.8), 10, [900, 0], 0.0, "model_output_learned", 6),
        ("ddpm_fixed_small_log_offset1", "ddpm",
         dict(beta_schedule="linear", variance_type="fixed_small_log", clip_sample=False, steps_offset=1),
         10, [901, 1], 0.0, "model_output", 3),
        ("ddpm_learned_range_clip_offset1", "ddpm",
         dict(beta_schedule="squaredcos_cap_v2", variance_type="learned_range", steps_offset=1),
         10, [901, 1], 0.0, "model_output", 6),
        ("ddim_epsilon_trailing_clip05_eta03", "ddim",
         dict(beta_schedule="linear", clip_sample_range=0.5, timestep_spacing="trailing"),
         7, [I(0), I(-1)], 0.3, "model_output", 3),
        ("ddim_sample_threshold_linspace", "ddim",
         dict(beta_schedule="squaredcos_cap_v2", prediction_type="sample", thresholding=True,
              sample_max_value=1.2, timestep_spacing="linspace"), 13, [I(0), I(6), I(-1)], 0.0, "model_output", 3),
        ("ddim_zero_snr_vpred_trailing", "ddim",
         dict(beta_schedule="scaled_linear", rescale_betas_zero_snr=True, prediction_type="v_prediction",
              clip_sample=False, set_alpha_to_one=False, timestep_spacing="trailing"),
         10, [I(0), I(-1)], 0.0, "model_output", 3),
        ("ddim_vpred_threshold_offset1_eta07", "ddim",
         dict(beta_schedule="linear", prediction_type="v_prediction", thresholding=True,
              dynamic_thresholding_ratio=0.9, sample_max_value=2.0, set_alpha_to_one=False, steps_offset=1),
         20, [I(0), I(-1)], 0.7, "model_output", 3),
    ]

    steps = []
    schedules = {}
    for name, kind, kwargs, schedule, ts, eta, inp, channels in step_specs:
        if isinstance(kwargs, tuple):
            sched = make_ddim_from(kwargs[1])
        else:
            sched = make(kind, kwargs)
        cfg = config_json(sched)
        if isinstance(schedule, list):
            sched.set_timesteps(timesteps=schedule)
        elif schedule is not None:
            sched.set_timesteps(schedule)
        tl = [int(t) for t in sched.timesteps]
        cases = []
        for t in ts:
            if isinstance(t, I):
                t = tl[t]
            assert schedule is None or t in tl, (name, t, tl)
            mo = inputs_t[inp]
            learned = kind == "ddpm" and sched.config.variance_type in ("learned", "learned_range")
            mo_py = mo if learned else mo[:, :3]
            if kind == "ddpm":
                out = sched.step(mo_py, t, sample)
                uses_noise = t > 0
            else:
                out = sched.step(mo_py, t, sample, eta=eta, variance_noise=noise if eta > 0 else None)
                uses_noise = eta > 0
            cases.append({
                "t": t,
                "noise": uses_noise,
                "prev_sample": blob.add(out.prev_sample),
                "pred_original_sample": blob.add(out.pred_original_sample),
            })
        steps.append({
            "name": name,
            "kind": kind,
            "config_json": cfg,
            "num_inference_steps": schedule if isinstance(schedule, int) else None,
            "custom_timesteps": schedule if isinstance(schedule, list) else None,
            "timesteps": tl if schedule is not None else None,
            "eta": eta,
            "model_output": inp,
            "channels": channels,
            "cases": cases,
        })
        schedules.setdefault(cfg, sched)

    # alphas_cumprod of every schedule the steps use, plus trained_betas and a 999-step training.
    extra = [
        make("ddpm", dict(num_train_timesteps=10, trained_betas=[0.01 * (i + 1) ** 1.5 for i in range(10)])),
        make("ddpm", dict(num_train_timesteps=999, beta_schedule="scaled_linear", beta_start=0.00085,
                          beta_end=0.012)),
        make("ddim", dict(num_train_timesteps=999, beta_schedule="squaredcos_cap_v2")),
    ]
    for s in extra:
        schedules.setdefault(config_json(s), s)
    alphas = []
    seen_betas = set()
    for cfg, s in schedules.items():
        key = (s.betas.numpy().tobytes(), type(s).__name__)
        if key in seen_betas:
            continue
        seen_betas.add(key)
        entry = {"kind": "ddpm" if isinstance(s, DDPMScheduler) else "ddim", "config_json": cfg,
                 "alphas_cumprod": blob.add(s.alphas_cumprod)}
        if isinstance(s, DDIMScheduler):
            entry["final_alpha_cumprod"] = blob.add(s.final_alpha_cumprod.reshape(1))
        alphas.append(entry)

    # Timestep schedules: full lists for a few counts, checksums for every count.
    timesteps = []
    for spacing, offset, n_train in [
        ("leading", 0, 1000), ("leading", 1, 1000), ("trailing", 0, 1000), ("linspace", 0, 1000),
        ("leading", 0, 999), ("trailing", 0, 999), ("linspace", 0, 999),
    ]:
        kwargs = dict(num_train_timesteps=n_train, timestep_spacing=spacing, steps_offset=offset)
        ddpm, ddim = DDPMScheduler(**kwargs), DDIMScheduler(**kwargs)
        lists, sums, extra_minus_one = {}, [], []
        for n in range(1, n_train + 1):
            ddpm.set_timesteps(n)
            ddim.set_timesteps(n)
            a = ddpm.timesteps.numpy().astype(np.int64)
            assert (a == ddim.timesteps.numpy()).all(), (kwargs, n)
            if len(a) == n + 1:
                # np.arange's float length rounds up: "trailing" then ends in an extra -1.
                assert spacing == "trailing" and a[-1] == -1 and (a[:-1] >= 0).all(), (kwargs, n, a)
                extra_minus_one.append(n)
                a = a[:-1]
            assert len(a) == n and (a >= 0).all(), (kwargs, n, a)
            sums.append(int(((np.arange(len(a)) + 1) * a).sum()))
            if n in (1, 3, 7, 16, 27, 50, 100):
                lists[str(n)] = [int(t) for t in a]
        timesteps.append({"config_json": config_json(ddpm), "lists": lists, "checksums": sums,
                          "extra_minus_one": extra_minus_one})

    add_noise = []
    for name, kind, kwargs, ts in [
        ("if_noising_250", "ddpm", IF_NOISING, [250]),
        ("if_noising_250x2", "ddpm", IF_NOISING, [250, 250]),
        ("if_noising_0_999", "ddpm", IF_NOISING, [0, 999]),
        ("sdx4_lowres_20x2", "ddpm", SDX4_LOWRES, [20, 20]),
        ("sdx4_lowres_350_1", "ddpm", SDX4_LOWRES, [350, 1]),
        ("sdx4_ddim_600_40", "ddim", SDX4_DDIM, [600, 40]),
    ]:
        s = make(kind, kwargs)
        out = s.add_noise(original, noise, torch.tensor(ts, dtype=torch.int64))
        add_noise.append({"name": name, "kind": kind, "config_json": config_json(s), "timesteps": ts,
                          "out": blob.add(out)})

    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    with open(os.path.join(OUT, "tensors.bin"), "wb") as f:
        for p in blob.parts:
            f.write(p)
    manifest = {
        "generator": "tools/reference/make_scheduler_fixtures.py",
        "versions": {"torch": torch.__version__, "diffusers": __import__("diffusers").__version__},
        "inputs": inputs,
        "steps": steps,
        "alphas_cumprod": alphas,
        "timesteps": timesteps,
        "add_noise": add_noise,
    }
    with open(os.path.join(OUT, "cases.json"), "w") as f:
        json.dump(manifest, f, separators=(",", ":"))
        f.write("\n")
    print(f"{sum(len(s['cases']) for s in steps)} step cases, {len(alphas)} schedules, {len(timesteps)} spacings, "
          f"{len(add_noise)} add_noise cases, {blob.size * 4} bytes of tensors")


if __name__ == "__main__":
    main()
