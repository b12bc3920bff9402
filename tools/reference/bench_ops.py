#!/usr/bin/env python3
"""Time the bench binary's op workloads in PyTorch on this machine's CPU (or CUDA with --device cuda).

Prints one JSON object {workload: milliseconds}; the bench binary reads it from the file named by
ITERINV_TORCH_TIMES and prints the ratio. Workload names and shapes must match benches/ops.rs.

    python3 -m venv venv && venv/bin/pip install torch
    venv/bin/python tools/reference/bench_ops.py > /tmp/torch_ops.json
    ITERINV_TORCH_TIMES=/tmp/torch_ops.json cargo bench --bench ops
"""
import argparse
import json
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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    dev = args.device
    torch.manual_seed(0)
    g = lambda *s, dtype=torch.float32: torch.randn(*s, device=dev, dtype=dtype)
    out = {}
    with torch.no_grad():
        a, b = g(1024, 1024), g(1024, 1024)
        out["matmul_1024_f32"] = timed(lambda: a @ b, dev)
        # f16 weights, f32 math: what iterinv computes (PyTorch has no such mixed CPU kernel, so
        # the widening is timed with it).
        bh = b.half()
        out["matmul_1024_f16w"] = timed(lambda: a @ bh.float(), dev)
        x, w, bias = g(2, 256, 64, 64), g(256, 256, 3, 3), g(256)
        out["conv3x3_b2_256_64"] = timed(lambda: F.conv2d(x, w, bias, padding=1), dev)
        q = g(2, 16, 1024, 64)
        k, v = g(2, 16, 1024 + 77, 64), g(2, 16, 1024 + 77, 64)
        out["attention_b2_h16_1024x1101_d64"] = timed(lambda: F.scaled_dot_product_attention(q, k, v), dev)
    out["_machine"] = f"torch {torch.__version__}, {dev}, {torch.get_num_threads()} threads"
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
