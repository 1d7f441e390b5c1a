#!/usr/bin/env bash
# A short GPU run for attention work (about 3 minutes of device time on an H100; session 10's run 4 ran
# its first version's steps in 90 s): in the unpacked payload of scripts/gpu-pack.sh, with node on PATH,
#   bash scripts/gpu-attention-quick.sh OUT_DIR [check paths] [alternative envs, ';'-separated]
# (defaults: the check paths wg-f,wg-bu,wg-bm,wg-bt,wg-g,wg-fn,wg-bp,wg-ba,wg-f3,wg-f3a,wg and sessions 11
# to 13's variants as the alternatives: KILN_ATTENTION_SM90_BWD=m128 (head dim 64's 128-row query
# blocks; 128 has no such mode and runs its default), KILN_ATTENTION_SM90_FWD=m192 (head dim 64's
# 192-row forward blocks; likewise), KILN_ATTENTION_SM90_ORDER=grouped, KILN_ATTENTION_SM90_PERSIST=on,
# KILN_ATTENTION_F32=fa2 (float32 on fa2's 3xTF32 mma.sync kernels instead of the basic WMMA ones:
# the bench's float32 rows), and all five). It writes into OUT_DIR: env.txt; checks.txt (the check
# paths against the float64 references, then every path's timings at the issue-4 shapes); bench.txt /
# bench-attention.json (`kiln bench attention --device cuda`, the defaults); bench-alts.txt (the same
# with each alternative environment, one after another); tests.tap (the attention, half and nn-cuda
# tests); tests-alts.tap (the attention tests with the last alternative, all variants on); alts.txt,
# bench-attention-alt-N.json (alternative N's bench) and summary.txt (scripts/gpu-summary.mjs: each
# case's best configuration and the goal's answer with it). Each step
# has a time limit, so the whole stays under about 8 minutes.
set -uo pipefail
OUT=${1:?usage: gpu-attention-quick.sh OUT_DIR [check paths] [alternative envs]}
paths=${2:-wg-f,wg-bu,wg-bm,wg-bt,wg-g,wg-fn,wg-bp,wg-ba,wg-f3,wg-f3a,wg}
all="KILN_ATTENTION_SM90_BWD=m128 KILN_ATTENTION_SM90_FWD=m192 KILN_ATTENTION_SM90_ORDER=grouped KILN_ATTENTION_SM90_PERSIST=on KILN_ATTENTION_F32=fa2"
alts=${3:-KILN_ATTENTION_SM90_BWD=m128;KILN_ATTENTION_SM90_FWD=m192;KILN_ATTENTION_SM90_ORDER=grouped;KILN_ATTENTION_SM90_PERSIST=on;KILN_ATTENTION_F32=fa2;$all}
mkdir -p "$OUT"
cd "$(dirname "$0")/.."
export KILN_TORCH_PYTHON=${KILN_TORCH_PYTHON:-$(command -v python3)}
export KILN_ADDON=$PWD/build/Release/kiln.node
{ cat .gpu-rev 2>/dev/null; nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv; } > "$OUT/env.txt" 2>&1
timeout 60 build/attention_cuda_check --sm90-only --no-time --paths "$paths" > "$OUT/checks.txt" 2>&1
grep -cE ' (PASS|FAIL)$' "$OUT/checks.txt" | sed 's/^/check verdicts: /'
grep -cE ' FAIL$' "$OUT/checks.txt" | sed 's/^/of which FAIL: /'
grep -E ' FAIL$' "$OUT/checks.txt" | head -20
timeout 200 build/attention_cuda_check --sm90-only --no-check >> "$OUT/checks.txt" 2>&1
grep -E '^time (wg|wg-z|wg-t|wg-o|wg-ot|wg-n|wg-on|wg-a|wg-3|wg-3t|wg-3a) ' "$OUT/checks.txt" | awk '{print $2, $3, $4, $5, $6, $7, "fwd+bwd", $21, "TF/s"}'
timeout 60 node dist/src/cli/main.js bench attention --device cuda --json "$OUT/bench-attention.json" > "$OUT/bench.txt" 2>&1
grep -E 'causal' "$OUT/bench.txt"
IFS=';' read -ra altList <<< "$alts"
: > "$OUT/bench-alts.txt"
: > "$OUT/alts.txt"
for i in "${!altList[@]}"; do
  alt=${altList[$i]}
  echo "$i $alt" >> "$OUT/alts.txt"
  echo "== with $alt" | tee -a "$OUT/bench-alts.txt"
  env $alt timeout 60 node dist/src/cli/main.js bench attention --device cuda --json "$OUT/bench-attention-alt-$i.json" >> "$OUT/bench-alts.txt" 2>&1
  grep -E 'causal  ' "$OUT/bench-alts.txt" | tail -8
done
# Each case's best configuration over the defaults and the alternatives (kiln TF/s against the median
# PyTorch rate of the benches), and whether issue 4's goal holds with it.
node scripts/gpu-summary.mjs "$OUT" > "$OUT/summary.txt" 2>&1
sed -n '/^best configuration per case/,$p' "$OUT/summary.txt"
timeout 60 node node_modules/ava/entrypoints/cli.mjs --tap --concurrency 8 --timeout 2m test/attention.test.ts test/dtype-half.test.ts \
  test/nn-cuda.test.ts > "$OUT/tests.tap" 2>&1
echo "tests: ok $(grep -c '^ok' "$OUT/tests.tap"), not ok $(grep -c '^not ok' "$OUT/tests.tap") ([cuda] ok $(grep '^ok' "$OUT/tests.tap" | grep -c cuda))"
# The attention tests once more with every variant on (the last alternative: all five together), so
# that one run validates them through the TypeScript op as well as the check program.
env ${altList[-1]} timeout 45 node node_modules/ava/entrypoints/cli.mjs --tap --concurrency 8 --timeout 2m test/attention.test.ts \
  > "$OUT/tests-alts.tap" 2>&1
echo "tests with ${altList[-1]}: ok $(grep -c '^ok' "$OUT/tests-alts.tap"), not ok $(grep -c '^not ok' "$OUT/tests-alts.tap")"
