#!/usr/bin/env bash
# Per-instruction (SASS) stall sampling of kiln's Hopper attention kernels, on a GPU machine:
#   bash scripts/gpu-source-profile.sh CHECK_BINARY OUT_DIR [kernel-regex@B,H,T,D,causal ...]
# (default: the backward at 2,16,8192,64,1 and 2,8,8192,128,1 and the forward at 2,16,8192,64,1).
# For each pair, Nsight Compute samples the 4th launch of the kernel (the default path, after warm-up)
# in `CHECK_BINARY --shape` and writes OUT_DIR/src-<kernel>-<shape>.csv: the source page, one row per
# SASS instruction with its executed count and its warp-state samples by stall reason. Also writes
# OUT_DIR/sass.txt.xz (cuobjdump -sass of the binary). Summarize here with
# scripts/source-profile-summary.py OUT_DIR/src-*.csv.
set -uo pipefail
BIN=${1:?usage: gpu-source-profile.sh CHECK_BINARY OUT_DIR [kernel@shape ...]}
OUT=${2:?usage: gpu-source-profile.sh CHECK_BINARY OUT_DIR [kernel@shape ...]}
shift 2
mkdir -p "$OUT"
jobs=("$@")
[ ${#jobs[@]} -gt 0 ] || jobs=(attention_bwd_sm90_kernel@2,16,8192,64,1 attention_bwd_sm90_kernel@2,8,8192,128,1 attention_fwd_sm90_kernel@2,16,8192,64,1)
ncu=$(command -v ncu || echo /usr/local/cuda/bin/ncu)
cuobjdump=$(command -v cuobjdump || echo /usr/local/cuda/bin/cuobjdump)
"$cuobjdump" -sass "$BIN" 2>&1 | xz -6 > "$OUT/sass.txt.xz"
for j in "${jobs[@]}"; do
  k=${j%@*}; s=${j#*@}
  tag="${k%_kernel}-${s//,/-}"
  rep="$OUT/rep-$tag"
  timeout ${KILN_GPU_PROFILE_TIMEOUT:-90} "$ncu" --kernel-name "regex:$k" --launch-skip 3 --launch-count 1 \
    --section SourceCounters --section WarpStateStats --section LaunchStats --export "$rep" -f "$BIN" --shape "$s" > "$OUT/log-$tag.txt" 2>&1
  echo "ncu $tag exit $?"
  "$ncu" --import "$rep.ncu-rep" --page source --print-source sass --csv > "$OUT/src-$tag.csv" 2>> "$OUT/log-$tag.txt"
  echo "source page $tag exit $? ($(wc -l < "$OUT/src-$tag.csv") lines)"
  "$ncu" --import "$rep.ncu-rep" --page details >> "$OUT/log-$tag.txt" 2>&1
  xz -6 "$OUT/src-$tag.csv"
  rm -f "$rep.ncu-rep"
done
