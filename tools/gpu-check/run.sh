#!/usr/bin/env bash
# The GPU check (issue 12, item 6), on the lent machine, from the repository root, with .gpu-check/
# (tools/gpu-check/prepare.sh) carried. Under 8 minutes: the engine's op tests against their f64
# references on the real GPU, PyTorch's side of the bench (CUDA, fp32 and fp16), then the bench
# (ops, blocks, tiny UNet, IF-I-M-shaped UNet, T5-XXL-shaped encoder) with PyTorch's times beside
# it, and a kernel profile of the UNet rows. Everything lands in $OUT (summary.md first).
set -uo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:-/tmp/gpu-check}
mkdir -p "$out"
summary=$out/summary.md
say() { echo "$*" | tee -a "$summary"; }
start=$(date +%s)
elapsed() { echo "$(( $(date +%s) - start )) s"; }

for f in .gpu-check/gl/*.deb; do dpkg -x "$f" /; done
ldconfig
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .gpu-check/whl/*.whl && export PYTHONPATH=/tmp/site
export PYTHONUNBUFFERED=1 WGPU_BACKEND=vulkan XDG_RUNTIME_DIR=/tmp
icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
[ -f "$icd" ] && export VK_DRIVER_FILES=$icd
# The binaries look for fixtures where they were built.
built=$(cat .gpu-check/built-at)
if [ "$built" != "$PWD" ] && [ ! -e "$built" ]; then
    mkdir -p "$(dirname "$built")" && ln -s "$PWD" "$built"
fi

say "# GPU check, $(date -u +%Y-%m-%d) ($(git rev-parse --short HEAD 2>/dev/null || echo 'no git'))"
say ""
say "$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1)"
say ""

timeout 90 .gpu-check/bin/engine-op-tests --test-threads 8 >"$out/op-tests.txt" 2>&1
code=$?
say "op tests against f64 references: exit $code, $(grep -c ' \.\.\. ok$' "$out/op-tests.txt") passed, $(grep -c ' \.\.\. FAILED$' "$out/op-tests.txt") failed (op-tests.txt) at $(elapsed)"

timeout 150 python3 tools/reference/bench_ops.py --device cuda --if-m --t5-xxl --x4 >"$out/torch_cuda.json" 2>"$out/torch.err"
say "PyTorch (CUDA): exit $? at $(elapsed)"
say ""

# The large rows are on by default; ITERINV_BENCH_IF_M=0 ITERINV_BENCH_T5_XXL=0 ITERINV_BENCH_X4=0
# for a dry run here.
export ITERINV_BENCH_IF_M=${ITERINV_BENCH_IF_M:-1} ITERINV_BENCH_T5_XXL=${ITERINV_BENCH_T5_XXL:-1}
export ITERINV_BENCH_X4=${ITERINV_BENCH_X4:-1}
ITERINV_TORCH_TIMES=$out/torch_cuda.json ITERINV_BENCH_SECONDS=1 timeout 180 .gpu-check/bin/bench >"$out/bench.md" 2>&1
code=$?
cat "$out/bench.md" >>"$summary"
say ""
say "bench: exit $code at $(elapsed)"

ITERINV_PROFILE=1 ITERINV_BENCH_T5_XXL=0 ITERINV_BENCH_X4=0 ITERINV_BENCH_ONLY=unet ITERINV_BENCH_SECONDS=0 \
    timeout 90 .gpu-check/bin/bench >"$out/profile.md" 2>&1
say "profile of the UNet rows (profile.md): exit $? at $(elapsed)"
cat "$summary"
