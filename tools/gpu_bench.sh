#!/usr/bin/env bash
# GPU figures beside the same host's CPU, in one short run (issue 19, item 6): builds diarist with
# `--features cuda`, takes ONNX Runtime's CUDA build and the CUDA/cuDNN libraries from PyPI
# wheels (onnxruntime-gpu and NVIDIA's nvidia-* wheels, pinned below) into .venv-gpu/, then
# measures, on the CPU and on the GPU:
#   1. offline throughput and DER over the AMI dev recordings (the DER shows the models give on
#      the GPU what they give on the CPU), and the 1 h recording (tools/long_recording.py);
#   2. concurrent real-time streams held (diarist bench --streams).
# Not yet run: no GPU machine has been lent to this project's sessions so far.
# Needs an NVIDIA GPU with a driver for CUDA 12, and the package registries (PyPI, crates). Writes
# target/gpu-bench.txt; the figures go to docs/BENCHMARKS.md with the GPU's and CPU's names.
set -euo pipefail
cd "$(dirname "$0")/.."
ORT_VERSION=1.32.0
EVAL=${EVAL:-../shared/eval}
out=target/gpu-bench.txt
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
[ -x .venv-gpu/bin/python ] || python3 -m venv .venv-gpu
.venv-gpu/bin/pip install --quiet "onnxruntime-gpu==$ORT_VERSION" \
  "nvidia-cuda-runtime-cu12" "nvidia-cublas-cu12" "nvidia-cudnn-cu12" "nvidia-cufft-cu12" \
  "nvidia-curand-cu12" "nvidia-cuda-nvrtc-cu12"
site=$(.venv-gpu/bin/python -c 'import site; print(site.getsitepackages()[0])')
ORT_GPU="$site/onnxruntime/capi/libonnxruntime.so.$ORT_VERSION"
LD_LIBRARY_PATH="$(find "$site/nvidia" -maxdepth 2 -name lib -type d | paste -sd:)${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export LD_LIBRARY_PATH
cargo build --locked --release -p diarist --features cuda
bin=target/release/diarist
cat > target/gpu.toml <<TOML
[runtime]
onnxruntime = "$PWD/$ORT_GPU"
provider = "cuda"
TOML
[ -f target/long1h.wav ] || python3 tools/long_recording.py target/long1h.wav 3600 "$EVAL"/*/*.wav
{
  echo "# $(date -u +%FT%TZ) $(nvidia-smi --query-gpu=name --format=csv,noheader | head -1); CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2) ($(nproc) cores)"
  for provider in cpu cuda; do
    cfg=(); [ "$provider" = cuda ] && cfg=(--config target/gpu.toml)
    echo "## $provider"
    "$bin" bench "$EVAL/ami" --ref "$EVAL/ami" "${cfg[@]}" 2>&1 | grep -E '^offline|^DER'
    /usr/bin/time -f "1 h recording: %e s wall, %M KB peak" "$bin" diarize "${cfg[@]}" target/long1h.wav 2>&1 >/dev/null | tail -1
    "$bin" bench "$EVAL/ami" --streams 20,40,80 --duration 30 "${cfg[@]}" 2>&1 | tail -6
  done
} | tee "$out"
