#!/usr/bin/env bash
# Nsight Compute over kiln's Hopper attention kernels, on a GPU machine in the unpacked payload of
# scripts/gpu-pack.sh (build/attention_cuda_check built with them):
#   bash scripts/gpu-profile.sh OUT_DIR [B,H,T,D,causal ...]      (default 2,8,8192,128,1 2,16,8192,64,1)
# For each shape: attention_cuda_check --shape times fa2 and every sm90 path there, and ncu reads one
# launch of the default sm90 backward and one of the default sm90 forward (the 4th of each, after
# warm-up; KILN_GPU_PROFILE_KERNELS picks, e.g. "attention_bwd_sm90_kernel"): speed of light, compute
# and memory workload, warp states with the stall reasons per issued instruction, sampled stall
# locations (source counters) and scheduler statistics, written to OUT_DIR/ncu-<shape>.txt. ncu locks the clocks to base: compare its figures with each other, and
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
  for k in ${KILN_GPU_PROFILE_KERNELS:-attention_bwd_sm90_kernel attention_fwd_sm90_kernel}; do
    echo "== $k at $s" | tee -a "$f"
    timeout ${KILN_GPU_PROFILE_TIMEOUT:-60} "$ncu" --kernel-name "regex:$k" --launch-skip 3 --launch-count 1 \
      --section SpeedOfLight --section ComputeWorkloadAnalysis --section MemoryWorkloadAnalysis \
      --section WarpStateStats --section SchedulerStats --section Occupancy --section LaunchStats --section SourceCounters \
      --metrics 'regex:smsp__average_warps_issue_stalled_.*_per_issue_active\.ratio' \
      build/attention_cuda_check --shape "$s" >> "$f" 2>&1
    echo "exit $?" | tee -a "$f"
  done
  grep -E '^\s+(Duration|SM Busy|Memory Throughput|Compute \(SM\) Throughput|Shared Memory|L2 Cache Throughput|Issue Slots Busy|No Eligible|Warp Cycles Per Issued|Registers Per Thread|Stall)' "$f" | head -60
  grep -E 'smsp__average_warps_issue_stalled' "$f" | sort -k3 -g -r | awk '$3 > 0.2' | head -24
done
