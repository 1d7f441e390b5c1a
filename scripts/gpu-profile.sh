#!/usr/bin/env bash
# Nsight Compute over kiln's Hopper attention kernels, on a GPU machine in the unpacked payload of
# scripts/gpu-pack.sh (build/attention_cuda_check built with them):
#   bash scripts/gpu-profile.sh OUT_DIR [B,H,T,D,causal ...]      (default 2,8,8192,128,1 2,16,8192,64,1)
# For each shape: attention_cuda_check --shape times fa2 and every sm90 path there, and ncu reads one
# launch of the default sm90 backward and one of the default sm90 forward (the 4th of each, after
# warm-up): speed of light, compute and memory workload, warp states and scheduler statistics, written
# to OUT_DIR/ncu-<shape>.txt. ncu locks the clocks to base: compare its figures with each other, and
# take timings from the check program.
set -uo pipefail
OUT=${1:?usage: gpu-profile.sh OUT_DIR [B,H,T,D,causal ...]}
shift
mkdir -p "$OUT"
cd "$(dirname "$0")/.."
shapes=("$@")
[ ${#shapes[@]} -gt 0 ] || shapes=(2,8,8192,128,1 2,16,8192,64,1)
ncu=$(command -v ncu || echo /usr/local/cuda/bin/ncu)
for s in "${shapes[@]}"; do
  f="$OUT/ncu-${s//,/-}.txt"
  for k in attention_bwd_sm90_kernel attention_fwd_sm90_kernel; do
    echo "== $k at $s" | tee -a "$f"
    timeout ${KILN_GPU_PROFILE_TIMEOUT:-60} "$ncu" --kernel-name "regex:$k" --launch-skip 3 --launch-count 1 \
      --section SpeedOfLight --section ComputeWorkloadAnalysis --section MemoryWorkloadAnalysis \
      --section WarpStateStats --section SchedulerStats --section Occupancy --section LaunchStats \
      build/attention_cuda_check --shape "$s" >> "$f" 2>&1
    echo "exit $?" | tee -a "$f"
  done
  grep -E '^\s+(Duration|SM Busy|Memory Throughput|Compute \(SM\) Throughput|Shared Memory|L2 Cache Throughput|Issue Slots Busy|No Eligible|Warp Cycles Per Issued|Registers Per Thread|Stall)' "$f" | head -60
done
