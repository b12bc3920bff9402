#!/usr/bin/env bash
# Prepare the GPU check (issue 12, item 6) on the development machine, where cargo and the network
# are: release binaries of the bench and of the engine's op tests, the Vulkan loader package and the
# Python wheels the lent machine lacks, all under .gpu-check/ (git-ignored), which the device run
# carries. Then, on the lent machine (see tools/gpu-check/README.md):
#   run(command="bash tools/gpu-check/run.sh", carry=[".gpu-check"], timeout_s=540)
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=.gpu-check
rm -rf "$dir"
mkdir -p "$dir/bin" "$dir/gl" "$dir/whl"

# The executable cargo built for target NAME (its JSON messages on stdin).
executable() {
    python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == sys.argv[1]:
        print(m["executable"])' "$1" | tail -n 1
}
bench=$(cargo bench --bench ops --no-run --message-format=json | executable ops)
tests=$(cargo test --release -p iterinv-engine --test ops --no-run --message-format=json | executable ops)
cp "$bench" "$dir/bin/bench"
cp "$tests" "$dir/bin/engine-op-tests"
strip "$dir/bin/bench" "$dir/bin/engine-op-tests"
# The binaries read fixtures from the absolute paths they were built at (env!("CARGO_MANIFEST_DIR")).
pwd > "$dir/built-at"

# The Vulkan loader (the lent machine has NVIDIA's driver, not always the loader).
apt_opts=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64)
mkdir -p /tmp/amd64/partial
apt-get "${apt_opts[@]}" update -qq
(cd "$dir/gl" && apt-get "${apt_opts[@]}" download libvulkan1 >/dev/null)

# diffusers for PyTorch's UNet rows (the lent machine's Python 3.12 has torch and transformers).
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux2014_x86_64 --platform any -d "$dir/whl" \
    diffusers==0.42.1 importlib_metadata
du -sh "$dir"
