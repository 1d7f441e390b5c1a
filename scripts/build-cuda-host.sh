#!/usr/bin/env bash
# Builds build/cuda_host/run: kiln's tensor-core kernels (kernels/cuda/gemm_sm90.cu, gemm.cu, attention_fwd_sm90.cu,
# attention_bwd_sm90.cu, attention_fa2.cu, attention.cu, contrastive.cu, diffusion.cu, softmax.cu, reduce.cu: device and host code) compiled with g++ for the host model of
# bench/native/cuda_host/model.cc, and the driver that checks them against float64 references
# (bench/native/cuda_host/run.cc). No GPU and no nvcc needed.
#   bash scripts/build-cuda-host.sh && build/cuda_host/run [--quick]
# The only changes made to the kernel sources on the way are two rewrites g++ needs, each checked to
# apply as often as expected: a launch `kernel<<<grid, block, smem>>>(args)` becomes `::kiln_host::Launcher(kernel, grid,
# block, smem)(args)`, and the dynamic shared-memory array `extern __shared__ ... smem_raw[]` becomes a
# pointer to the block's shared memory. Under KILN_HOST_MODEL sm90_common.cuh swaps its PTX wrappers
# for the model's (sm90_host_model.h), attention_fa2.cu its mma.sync / ldmatrix / cp.async helpers,
# attention_common.cuh its ex2.approx.
set -euo pipefail
cd "$(dirname "$0")/.."
out=build/cuda_host
mkdir -p "$out/src"
# file:shared-memory declarations:launches
for spec in gemm_sm90:1:1 gemm:1:5 attention_fwd_sm90:1:1 attention_bwd_sm90:1:1 attention_fa2:4:3 attention:2:4 contrastive:0:12 diffusion:0:3 softmax:0:2 reduce:0:12; do
  IFS=: read -r f nsmem nlaunch <<< "$spec"
  NSMEM=$nsmem NLAUNCH=$nlaunch perl -0777 -ne '
    my $n1 = s/extern __shared__ __align__\((\d+)\) ((?:unsigned )?char) (\w+)\[\];/$2* const $3 = reinterpret_cast<$2*>(::kiln_host::dynamic_smem());/g;
    my $n2 = s/([\w:]+(?:<[^<>;]*>)?)<<<(.*?)>>>\(/::kiln_host::Launcher($1, $2)(/g;
    die "'"$f"': expected $ENV{NSMEM} shared-memory declarations and $ENV{NLAUNCH} launches, rewrote $n1 and $n2\n"
      unless $n1 == $ENV{NSMEM} && $n2 == $ENV{NLAUNCH};
    print;
  ' "kernels/cuda/$f.cu" > "$out/src/$f.cc"
done
flags=(-std=c++17 -O2 -mf16c -fno-strict-aliasing -Wall -Wno-psabi -Wno-unknown-pragmas -Wno-unused-function -Wno-unused-variable
  -DKILN_SM90_DEVICE=1 -DKILN_HOST_MODEL=1 -DKILN_ATTENTION_SM90=1 -DKILN_GEMM_SM90=1
  -Ibench/native/cuda_host/cuda_shim -Ibench/native/cuda_host -Ikernels/cuda -Ikernels/common -Ikernels/cpu
  -include kiln_host_cuda.h)
printf '%s\n' "${flags[@]}" > "$out/flags"  # for bench/native/cuda_host/mutants.py
objs=()
pids=()
for src in "$out"/src/{gemm_sm90,gemm,attention_fwd_sm90,attention_bwd_sm90,attention_fa2,attention,contrastive,diffusion,softmax,reduce}.cc bench/native/cuda_host/model.cc bench/native/cuda_host/run.cc; do
  o="$out/$(basename "${src%.cc}").o"
  g++ "${flags[@]}" -c "$src" -o "$o" &
  pids+=($!)
  objs+=("$o")
done
# The CPU attention (the reference for attention.cu's dispatch: every option, dropout included) and the
# CPU diffusion, softmax, cross-entropy and reduction kernels (diffusion.cu's, softmax.cu's and reduce.cu's twins), at -O1 without the ISA clones: 12 s to build instead
# of 90, and the reference's shapes are small.
for src in kernels/cpu/attention.cc kernels/cpu/diffusion.cc kernels/cpu/softmax.cc kernels/cpu/crossentropy.cc kernels/cpu/reduce.cc kernels/cpu/threads.cc; do
  o="$out/cpu_$(basename "${src%.cc}").o"
  g++ -std=c++17 -O1 -DKILN_NO_CLONES -fopenmp -fno-math-errno -fno-trapping-math -Wno-psabi -Ikernels/cpu -Ikernels/common -c "$src" -o "$o" &
  pids+=($!)
  objs+=("$o")
done
for p in "${pids[@]}"; do wait "$p"; done
g++ "${objs[@]}" -fopenmp -o "$out/run"
echo "built $out/run"
