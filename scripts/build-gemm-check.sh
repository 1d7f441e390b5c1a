#!/usr/bin/env bash
# Builds bench/native/gemm_cuda_check.cu (check + timing of the CUDA matrix products: the mma.sync
# kernels of gemm.cu and the Hopper wgmma kernel of gemm_sm90.cu) into build/gemm_cuda_check: no GPU
# needed to build, the CUDA runtime linked statically; backend.cu brings the caching allocator that
# gemm.cu's split-K workspace comes from. gemm_sm90.cu is compiled for sm_90a alone.
#   bash scripts/build-gemm-check.sh            # sm_80 + sm_90 (+ sm_90a for the wgmma kernel)
#   ARCHS="90" bash scripts/build-gemm-check.sh # only sm_90 (faster build)
# Run on a GPU machine: build/gemm_cuda_check [--check] [--time] [--wgmma] [--variants] [--profile]
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p build
gencode=()
for a in ${ARCHS:-80 90}; do gencode+=(-gencode "arch=compute_$a,code=sm_$a"); done
flags=(-std=c++17 -O3 --Werror all-warnings -Xcompiler=-Wall,-Werror -Ikernels/cuda -Ikernels/common -Ikernels/cpu)
nvcc "${flags[@]}" -gencode arch=compute_90a,code=sm_90a -c kernels/cuda/gemm_sm90.cu -o build/gemm_sm90_check.o
nvcc "${flags[@]}" -Xcompiler=-fopenmp "${gencode[@]}" -DKILN_GEMM_SM90=1 --cudart static \
  bench/native/gemm_cuda_check.cu kernels/cuda/backend.cu build/gemm_sm90_check.o -o build/gemm_cuda_check -lgomp
echo "built build/gemm_cuda_check"
