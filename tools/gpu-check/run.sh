#!/usr/bin/env bash
# The GPU check (issue 12, item 6), on the lent machine, from the repository root, with .gpu-check/
# (tools/gpu-check/prepare.sh) carried. Under 8 minutes: the engine's op tests against their f64
# references on the real GPU, then the cooperative-matrix (tensor-core) tests with the hardware
# path required, PyTorch's side of the bench (CUDA, fp32 and fp16), then the bench twice (f32
# products; f16 products, on tensor cores where the device has cooperative matrices: ops, blocks,
# matmul 4096³, tiny UNet, IF-I-M-shaped UNet, x4 upscaler, and the T5-XXL-shaped encoder at f32)
# with PyTorch's times beside it, and a kernel profile of the f16 UNet rows. Everything lands in
# $OUT (summary.md first).
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

tests() { # NAME FILE TIMEOUT [filter...]
    local name=$1 file=$2 limit=$3
    shift 3
    timeout "$limit" .gpu-check/bin/engine-op-tests --test-threads 8 "$@" >"$out/$file" 2>&1
    local code=$?
    say "$name: exit $code, $(grep -c ' \.\.\. ok$' "$out/$file") passed, $(grep -c ' \.\.\. FAILED$' "$out/$file") failed ($file) at $(elapsed)"
}
tests "op tests against f64 references" op-tests.txt 50
# ITERINV_COOP=on: a device without cooperative matrices for f16 products fails these tests
# instead of passing on the portable kernels.
ITERINV_COOP=on tests "cooperative-matrix and f16 tests (hardware required)" coop-tests.txt 40 coop precision_f16

timeout 130 python3 tools/reference/bench_ops.py --device cuda --if-m --t5-xxl --x4 --large >"$out/torch_cuda.json" 2>"$out/torch.err"
say "PyTorch (CUDA): exit $? at $(elapsed)"
say ""

# The large rows are on by default; ITERINV_BENCH_IF_M=0 ITERINV_BENCH_T5_XXL=0 ITERINV_BENCH_X4=0
# ITERINV_BENCH_LARGE=0 for a dry run here.
export ITERINV_BENCH_IF_M=${ITERINV_BENCH_IF_M:-1} ITERINV_BENCH_T5_XXL=${ITERINV_BENCH_T5_XXL:-1}
export ITERINV_BENCH_X4=${ITERINV_BENCH_X4:-1} ITERINV_BENCH_LARGE=${ITERINV_BENCH_LARGE:-1}
export ITERINV_TORCH_TIMES=$out/torch_cuda.json ITERINV_BENCH_SECONDS=1
bench() { # FILE TIMEOUT (environment: the run's settings)
    timeout "$2" .gpu-check/bin/bench >"$out/$1" 2>&1
    local code=$?
    cat "$out/$1" >>"$summary"
    say ""
    say "bench ($1): exit $code at $(elapsed)"
    say ""
}
ITERINV_PRECISION=f32 bench bench-f32.md 120
# T5 stays f32 in the pipeline: its f16 row would time nothing iterinv runs. The NTI and IterInv
# inner iterations at IF-I-M / IF-II-L shapes come last in this run (its limit cuts them first).
ITERINV_PRECISION=f16 ITERINV_BENCH_T5_XXL=0 ITERINV_BENCH_INNER=1 bench bench-f16.md 100

ITERINV_PRECISION=f16 ITERINV_PROFILE=1 ITERINV_BENCH_T5_XXL=0 ITERINV_BENCH_X4=0 ITERINV_BENCH_LARGE=0 \
    ITERINV_BENCH_ONLY=unet ITERINV_BENCH_SECONDS=0 timeout 40 .gpu-check/bin/bench >"$out/profile.md" 2>&1
say "profile of the f16 UNet rows (profile.md): exit $? at $(elapsed)"
cat "$summary"
