#!/usr/bin/env python3
"""Why PyTorch float32 null-text inversion lands above its own float64 (issue 17).

The loop is tools/reference/nti_trace.py's `nti` (stage I of the tiny trained cascade, 50 steps, 51 Adam
steps per timestep, lr 1e-3 (1 - i/100), guidance 3, dynamic thresholding, summed loss), generalised so
that each piece's precision and Adam's details can be changed one at a time. A run's configuration is
a list of key=value (run --configs "name:key=val,key=val;name2:..."):

  main=f32|f64   precision of the DDIM inversion (targets), the latent x and its guided advance
  grad=f32|f64   precision in which the loss and the null's gradient are computed (the UNet forward
                 and backward of the 51 inner steps); the state is rounded to it and the gradient
                 converted back (default: main)
  adam=f32|f64   precision of the Adam parameter (master null) and state (default: main)
  unet=f32|f64   mixed stage: the UNet in this precision, the scheduler step, thresholding and loss in
                 main's
  eps=E          Adam eps (torch default 1e-8)
  floor=F        zero gradient components with |g| < F before Adam
  noise=R        add R * |g| * N(0, 1) to each gradient component: synthetic relative noise
  nseed=N        the generator seed of noise (default 12345)
  sym=1          replace the gradient of the null's positions 1..76 (the padding, identical rows of the
                 empty prompt's embedding) by their mean: keeps those rows identical
  seed=S         the image moved by one ulp in a random half of its elements (nti_trace.one_ulp);
                 default -1: the image itself

With main = grad = adam and no other key, the run is bit-for-bit nti_trace's loop.

  run   one or more whole runs -> PSNR per run, JSON lines (appended to --out with the per-timestep losses)
  diag  the float64 run with, at inner steps 0, 25, 50 of every timestep, the float32 gradient at the
        same state (the float64 state rounded), and per timestep the float32 Adam timestep from the
        float64 state (nti_trace.nti_local): gradient statistics -> JSON
  probe one timestep (--at, default 2) from the float64 run's state before it, in float64, float32 and
        float64 from a null moved by a relative 1e-7: loss, thresholding quantile, parting per inner step

Run from the repository root, e.g.
  /work/venv/ref/bin/python tools/reference/nti_f32_bias.py diag --photo chelsea --out /tmp/diag_chelsea.json
  /work/venv/ref/bin/python tools/reference/nti_f32_bias.py run --photo camera \
      --configs "base:main=f32;eps6:main=f32,eps=1e-6;f64:main=f64"
"""
import argparse
import json
import math
import os
import sys
import time

import torch
from diffusers import IFPipeline

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_inversion_fixtures import Stage, psnr  # noqa: E402
from nti_trace import one_ulp  # noqa: E402
from train_tiny_cascade import PROMPTS, load_photo  # noqa: E402

F64, F32 = torch.float64, torch.float32
DT = {"f32": F32, "f64": F64}


class MixedStage(Stage):
    """UNet in unet_dtype, everything else (scheduler step, thresholding, loss) in the inputs' dtype."""

    def __init__(self, unet, config, steps, unet_dtype):
        super().__init__(unet, config, steps=steps, dtype=unet_dtype)
        self.unet_dtype = unet_dtype

    def eps(self, x, t, ctx):
        return super().eps(x.to(self.unet_dtype), t, ctx.to(self.unet_dtype)).to(x.dtype)


class Ctx:
    def __init__(self, args):
        torch.set_num_threads(1)
        torch.use_deterministic_algorithms(True)
        self.args = args
        path = os.path.join(args.cascade, "stage1")
        self.pipe = IFPipeline.from_pretrained(path)
        self.pipe32 = IFPipeline.from_pretrained(path)  # a second copy: Stage casts the UNet in place
        with torch.no_grad():
            self.cond, self.null = self.pipe.encode_prompt(
                PROMPTS[args.photo], do_classifier_free_guidance=True, negative_prompt=None,
                device=torch.device("cpu"), clean_caption=False)
        size = self.pipe.unet.config.sample_size
        self.image = load_photo(os.path.join(args.photos, f"{args.photo}.png"), size).float()
        self.stages = {}

    def stage(self, dtype, unet_dtype=None):
        unet_dtype = unet_dtype or dtype
        key = (dtype, unet_dtype)
        if key not in self.stages:
            pipe = self.pipe if unet_dtype == F64 else self.pipe32
            if unet_dtype == dtype:
                self.stages[key] = Stage(pipe.unet, pipe.scheduler.config, steps=self.args.steps, dtype=dtype)
            else:
                self.stages[key] = MixedStage(pipe.unet, pipe.scheduler.config, self.args.steps, unet_dtype)
        return self.stages[key]


def whole_run(ctx, cfg, record=False):
    """One NTI run with cfg: dict(main, grad, adam, eps, floor, noise, seed, unet). Returns (psnr, info)."""
    a = ctx.args
    main, grad_dt, adam_dt = DT[cfg.get("main", "f32")], DT[cfg.get("grad", cfg.get("main", "f32"))], \
        DT[cfg.get("adam", cfg.get("main", "f32"))]
    unet_dt = DT[cfg["unet"]] if "unet" in cfg else None
    eps, floor, noise = float(cfg.get("eps", 1e-8)), float(cfg.get("floor", 0)), float(cfg.get("noise", 0))
    seed = int(cfg.get("seed", -1))
    sym = cfg.get("sym", "0") == "1"
    image = ctx.image if seed < 0 else one_ulp(ctx.image, seed)
    sm = ctx.stage(main, unet_dt)
    sg = ctx.stage(grad_dt, unet_dt if grad_dt == main else None)
    gen = torch.Generator().manual_seed(int(cfg.get("nseed", 12345)))
    x, c, n = image.to(main), ctx.cond.to(main), ctx.null.to(main)
    with torch.no_grad():
        trace = sm.ddim_invert(x, c)
    x = trace[-1]
    null = n.to(adam_dt)
    finals, stats = [], []
    cg = ctx.cond.to(grad_dt)
    for i, t in enumerate(sm.timesteps):
        target = trace[-2 - i]
        master = null.clone().requires_grad_(True)
        adam = torch.optim.Adam([master], lr=a.lr * (1 - i / 100), eps=eps)
        xg, tg = x.to(grad_dt), target.to(grad_dt)
        small = 0
        for k in range(a.inner_steps):
            adam.zero_grad()
            if grad_dt == adam_dt:
                p = master
            else:
                p = master.detach().to(grad_dt).requires_grad_(True)
            loss = sg.step_loss(xg, t, tg, cg, p, a.guidance)
            loss.backward()
            if p is not master:
                master.grad = p.grad.to(adam_dt)
            g = master.grad
            if noise > 0:
                g.add_(noise * g.abs() * torch.randn(g.shape, generator=gen, dtype=F64).to(g.dtype))
            if sym:
                g[:, 1:, :] = g[:, 1:, :].mean(dim=1, keepdim=True)
            if floor > 0:
                m = g.abs() < floor
                small += int(m.sum())
                g.masked_fill_(m, 0.0)
            adam.step()
        null = master.detach().clone()
        with torch.no_grad():
            x = sm.step(sm.guided(x, t, c, null.to(main), a.guidance), t, x)
        finals.append(((x - target) ** 2).sum().item())
        if floor > 0:
            stats.append(small)
    pads = null[0, 1:].to(F64)
    info = {"finals": finals, "pad_spread_end": float((pads - pads.mean(0)).abs().max()),
            "pad_spread_start": float((ctx.null[0, 1:] - ctx.null[0, 1:2]).abs().max())}
    if floor > 0:
        info["zeroed_per_timestep"] = stats
    return psnr(x.to(F64), ctx.image.to(F64)), info


def parse_configs(s):
    out = []
    for part in s.split(";"):
        part = part.strip()
        if not part:
            continue
        name, _, kv = part.partition(":")
        cfg = {}
        for item in kv.split(","):
            if item:
                k, _, v = item.partition("=")
                cfg[k.strip()] = v.strip()
        out.append((name.strip(), cfg))
    return out


def cmd_run(args):
    ctx = Ctx(args)
    for name, cfg in parse_configs(args.configs):
        t0 = time.time()
        p, info = whole_run(ctx, cfg)
        rec = {"photo": args.photo, "name": name, "cfg": cfg, "psnr": round(p, 3), "seconds": round(time.time() - t0, 1),
               "final_loss_last": info["finals"][-1], "pad_spread_start": info["pad_spread_start"],
               "pad_spread_end": info["pad_spread_end"]}
        if "zeroed_per_timestep" in info:
            z = info["zeroed_per_timestep"]
            rec["zeroed_fraction"] = sum(z) / (len(z) * args.inner_steps * ctx.null.numel())
        print(json.dumps(rec), flush=True)
        if args.out:
            with open(args.out, "a") as f:
                f.write(json.dumps({**rec, "finals": info["finals"]}) + "\n")


def qs(v, q=(0.0, 0.01, 0.1, 0.5, 0.9, 0.99, 1.0)):
    v = v.flatten().to(F64)
    return [float(x) for x in torch.quantile(v, torch.tensor(q, dtype=F64))]


def grad_at(stage, x, t, target, cond, null, w):
    p = null.clone().requires_grad_(True)
    loss = stage.step_loss(x, t, target, cond, p, w)
    loss.backward()
    return p.grad.detach(), loss.item()


def cmd_diag(args):
    """Float64 run; at inner steps 0, 25, 50 the float32 gradient at the same (rounded) state; per
    timestep the float32 Adam timestep from the float64 state."""
    ctx = Ctx(args)
    s64, s32 = ctx.stage(F64), ctx.stage(F32)
    a = args
    image = ctx.image.to(F64)
    c64, c32 = ctx.cond.to(F64), ctx.cond.to(F32)
    with torch.no_grad():
        trace = s64.ddim_invert(image, c64)
    null = ctx.null.to(F64)
    x = trace[-1]
    out = []
    probe = {0, 25, a.inner_steps - 1}
    for i, t in enumerate(s64.timesteps):
        target = trace[-2 - i]
        lr = a.lr * (1 - i / 100)
        rec = {"i": i, "t": t, "probes": []}
        # float32 Adam timestep from the same start (nti_local)
        p32 = null.to(F32).clone().requires_grad_(True)
        adam32 = torch.optim.Adam([p32], lr=lr)
        x32, tg32 = x.to(F32), target.to(F32)
        for _ in range(a.inner_steps):
            adam32.zero_grad()
            s32.step_loss(x32, t, tg32, c32, p32, a.guidance).backward()
            adam32.step()
        # float64 timestep, probing the float32 gradient at the same state
        p = null.clone().requires_grad_(True)
        adam = torch.optim.Adam([p], lr=lr)
        for k in range(a.inner_steps):
            adam.zero_grad()
            loss = s64.step_loss(x, t, target, c64, p, a.guidance)
            loss.backward()
            if k in probe:
                g64 = p.grad.detach().clone()
                g32, l32 = grad_at(s32, x.to(F32), t, target.to(F32), c32, p.detach().to(F32), a.guidance)
                g32 = g32.to(F64)
                err = (g32 - g64).abs()
                rel = err / g64.abs().clamp_min(1e-300)
                ag = g64.abs()
                # Adam's first step is lr * sign(g) (m/sqrt(v) = g/|g|); what differs is sign flips
                # and, near eps, the magnitude
                rec["probes"].append({
                    "inner": k, "loss64": loss.item(), "loss32": l32,
                    "absg64_q": qs(ag), "abserr_q": qs(err), "relerr_q": qs(rel),
                    "grad_norm64": float(g64.norm()), "err_norm": float(err.norm()),
                    "frac_g64_lt_1e-8_and_g32_gt_1e-8": float(((ag < 1e-8) & (g32.abs() > 1e-8)).double().mean()),
                    "frac_g64_lt_1e-8": float((ag < 1e-8).double().mean()),
                    "frac_g64_lt_1e-6": float((ag < 1e-6).double().mean()),
                    "frac_relerr_gt_0.1": float((rel > 0.1).double().mean()),
                    "frac_relerr_gt_1": float((rel > 1).double().mean()),
                    "frac_sign_flip": float((torch.sign(g32) != torch.sign(g64)).double().mean()),
                    "min_absg64": float(ag.min()),
                })
            adam.step()
        new_null = p.detach().clone()
        d64 = (new_null - null)[0]  # [77, D]
        d32 = (p32.detach().to(F64) - null)[0]
        dd = (d32 - d64).abs()
        per_tok = dd.norm(dim=1)
        per_dim = dd.norm(dim=0)
        top_tok = torch.topk(per_tok, 5)
        top_dim = torch.topk(per_dim, 5)
        rec["step"] = {
            "norm_d64": float(d64.norm()), "norm_d32_minus_d64": float(dd.norm()),
            "max_abs_d64": float(d64.abs().max()), "max_abs_diff": float(dd.max()),
            "absd64_q": qs(d64.abs()), "absdiff_q": qs(dd),
            "token_diff_norm_first": [float(v) for v in per_tok[:12]],
            "token_diff_norm_pad_mean": float(per_tok[12:].mean()),
            "top_tokens": [int(v) for v in top_tok.indices], "top_token_norms": [float(v) for v in top_tok.values],
            "top_dims": [int(v) for v in top_dim.indices], "top_dim_norms": [float(v) for v in top_dim.values],
            "token_d64_norm_first": [float(v) for v in d64.norm(dim=1)[:12]],
            "token_d64_norm_pad_mean": float(d64.norm(dim=1)[12:].mean()),
        }
        null = new_null
        with torch.no_grad():
            x = s64.step(s64.guided(x, t, c64, null, a.guidance), t, x)
        rec["final64"] = ((x - target) ** 2).sum().item()
        out.append(rec)
        pr = rec["probes"][0]
        print(json.dumps({"i": i, "t": t, "loss64": pr["loss64"], "g_q50": pr["absg64_q"][3], "g_min": pr["min_absg64"],
                          "relerr_q50": pr["relerr_q"][3], "relerr_q99": pr["relerr_q"][5],
                          "flip": pr["frac_sign_flip"], "lt1e-8": pr["frac_g64_lt_1e-8"],
                          "step_diff/step": rec["step"]["norm_d32_minus_d64"] / rec["step"]["norm_d64"]}), flush=True)
    p = psnr(x, image)
    print(json.dumps({"psnr_f64": p}), flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"psnr_f64": p, "photo": args.photo, "timesteps": out}, f)


def thresh_info(stage, x, t, cond, null, w):
    """The dynamic thresholding at this inner step: the 0.95 quantile s of |x0| (before the clamp to
    [1, 1.5]) and the gap between the two order statistics it interpolates and their neighbours."""
    with torch.no_grad():
        e = stage.guided(x, t, cond, null, w)
        a_t = stage.sched.alphas_cumprod[t]
        x0 = (x - (1 - a_t) ** 0.5 * e) / a_t ** 0.5
        v = x0.abs().flatten().sort().values
        n = v.numel()
        pos = 0.95 * (n - 1)
        lo = int(math.floor(pos))
        s = float(torch.quantile(x0.abs().flatten(), 0.95))
        return {"s": s, "gap_lo": float(v[lo] - v[lo - 1]), "gap_mid": float(v[lo + 1] - v[lo]),
                "gap_hi": float(v[lo + 2] - v[lo + 1]), "frac_gt_s_clamped": float((x0.abs() > min(max(s, 1), 1.5)).double().mean())}


def cmd_probe(args):
    """Timestep --at from the float64 run's state before it: the 51 inner steps in float64, in float32,
    and in float64 from a null moved by a relative 1e-7 (seeded): loss, thresholding quantile, and how
    far the nulls part, per inner step."""
    ctx = Ctx(args)
    s64, s32 = ctx.stage(F64), ctx.stage(F32)
    a = args
    c64 = ctx.cond.to(F64)
    with torch.no_grad():
        trace = s64.ddim_invert(ctx.image.to(F64), c64)
    x, null = trace[-1], ctx.null.to(F64)
    for i, t in enumerate(s64.timesteps):
        target = trace[-2 - i]
        lr = a.lr * (1 - i / 100)
        if i < a.at:
            p = null.clone().requires_grad_(True)
            adam = torch.optim.Adam([p], lr=lr)
            for _ in range(a.inner_steps):
                adam.zero_grad()
                s64.step_loss(x, t, target, c64, p, a.guidance).backward()
                adam.step()
            null = p.detach().clone()
            with torch.no_grad():
                x = s64.step(s64.guided(x, t, c64, null, a.guidance), t, x)
            continue
        g = torch.Generator().manual_seed(7)
        starts = {"f64": (s64, F64, null), "f32": (s32, F32, null),
                  "f64_moved": (s64, F64, null * (1 + 1e-7 * torch.randn(null.shape, generator=g, dtype=F64)))}
        traj = {}
        for name, (st, dt, n0) in starts.items():
            p = n0.to(dt).clone().requires_grad_(True)
            adam = torch.optim.Adam([p], lr=lr)
            rows = []
            for k in range(a.inner_steps):
                adam.zero_grad()
                loss = st.step_loss(x.to(dt), t, target.to(dt), ctx.cond.to(dt), p, a.guidance)
                info = thresh_info(st, x.to(dt), t, ctx.cond.to(dt), p.detach(), a.guidance)
                loss.backward()
                rows.append({"loss": loss.item(), **info, "null": p.detach().to(F64).clone()})
                adam.step()
            rows.append({"null": p.detach().to(F64).clone()})
            traj[name] = rows
        print(f"timestep {i} (t={t}); per inner step: loss, s (quantile), gaps at the quantile, |null - f64 null|")
        for k in range(a.inner_steps + 1):
            line = [f"{k:2d}"]
            for name, rows in traj.items():
                r = rows[k]
                d = float((r["null"] - traj["f64"][k]["null"]).norm())
                if "loss" in r:
                    line.append(f"{name}: L={r['loss']:.9f} s={r['s']:.9f} gaps={r['gap_lo']:.2e},{r['gap_mid']:.2e},{r['gap_hi']:.2e} d={d:.2e}")
                else:
                    line.append(f"{name}: d={d:.2e}")
            print(" | ".join(line), flush=True)
        break


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("cmd", choices=["run", "diag", "probe"])
    ap.add_argument("--at", type=int, default=2, help="probe: the timestep index")
    ap.add_argument("--cascade", default="tests/fixtures/trained_cascade")
    ap.add_argument("--photos", default="tests/fixtures/photos")
    ap.add_argument("--photo", default="chelsea")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--inner-steps", type=int, default=51)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--guidance", type=float, default=3.0)
    ap.add_argument("--configs", default="f32:main=f32")
    ap.add_argument("--out")
    args = ap.parse_args()
    {"run": cmd_run, "diag": cmd_diag, "probe": cmd_probe}[args.cmd](args)


if __name__ == "__main__":
    main()
