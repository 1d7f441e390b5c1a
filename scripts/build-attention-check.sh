#!/usr/bin/env bash
# Builds bench/native/attention_cuda_check.cu (check + timing of the CUDA attention kernels, fa2 and
# basic) into build/attention_cuda_check: no GPU needed to build, the CUDA runtime linked statically.
#   bash scripts/build-attention-check.sh            # sm_80 + sm_90
#   ARCHS="90" bash scripts/build-attention-check.sh # only sm_90 (faster build)
# Run on a GPU machine: build/attention_cuda_check [--cpu-only] [--no-check] [--no-time] [--basic-time]
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p build
gencode=()
for a in ${ARCHS:-80 90}; do gencode+=(-gencode "arch=compute_$a,code=sm_$a"); done
nvcc -std=c++17 -O3 --Werror all-warnings -Xcompiler=-Wall,-Werror,-fopenmp "${gencode[@]}" \
  -Ikernels/cuda -Ikernels/common -Ikernels/cpu --cudart static \
  kernels/cuda/attention.cu kernels/cuda/attention_fa2.cu kernels/cuda/backend.cu bench/native/attention_cuda_check.cu \
  -o build/attention_cuda_check -lgomp
echo "built build/attention_cuda_check"
