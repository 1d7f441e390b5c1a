#!/usr/bin/env bash
# Builds bench/native/attention_cuda_check.cu (check + timing of the CUDA attention kernels: fa2,
# basic, and the Hopper wgmma kernels of attention_{fwd,bwd}_sm90.cu) into build/attention_cuda_check:
# no GPU needed to build, the CUDA runtime linked statically. The *_sm90.cu files (with gemm_sm90.cu,
# which holds the TMA descriptor helpers) are compiled for sm_90a alone, as CMake does.
#   bash scripts/build-attention-check.sh            # sm_80 + sm_90 (+ sm_90a for the wgmma kernels)
#   ARCHS="90" bash scripts/build-attention-check.sh # only sm_90 (faster build)
# Run on a GPU machine:
#   build/attention_cuda_check [--cpu-only] [--no-check] [--no-time] [--basic-time] [--no-wgmma]
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p build
gencode=()
for a in ${ARCHS:-80 90}; do gencode+=(-gencode "arch=compute_$a,code=sm_$a"); done
flags=(-std=c++17 -O3 --Werror all-warnings -Xcompiler=-Wall,-Werror -Ikernels/cuda -Ikernels/common -Ikernels/cpu)
sm90=()
pids=()
for f in gemm_sm90 attention_fwd_sm90 attention_bwd_sm90; do
  nvcc "${flags[@]}" -gencode arch=compute_90a,code=sm_90a -c kernels/cuda/$f.cu -o build/${f}_check.o &
  pids+=($!)
  sm90+=(build/${f}_check.o)
done
for p in "${pids[@]}"; do wait "$p"; done  # each wait returns its compile's status (set -e stops on a failure)
nvcc "${flags[@]}" -Xcompiler=-fopenmp "${gencode[@]}" -DKILN_ATTENTION_SM90=1 -DKILN_CHECK_SM90=1 --cudart static \
  kernels/cuda/attention.cu kernels/cuda/attention_fa2.cu kernels/cuda/backend.cu bench/native/attention_cuda_check.cu \
  "${sm90[@]}" -o build/attention_cuda_check -lgomp
echo "built build/attention_cuda_check"
