#!/usr/bin/env bash
# kiln's one GPU check (issues 6 and 7): run on a GPU machine in the unpacked payload of
# scripts/gpu-pack.sh, with node on the PATH:  bash scripts/gpu-check.sh OUT_DIR
# 1. the environment (nvidia-smi, node, torch);
# 2. the whole test suite with the GPU present: every checkOp/perDevice test gets its [cuda] variant,
#    compared with the same references as on the CPU (TAP in OUT/tests.tap);
# 3. the card's yardsticks (torch bf16/TF32 matmul, copy bandwidth) and every `kiln bench` that has
#    a --device cuda variant, against PyTorch on the same card (OUT/bench.json, OUT/bench.txt);
# 4. the standalone kernel checks, if built (build/attention_cuda_check, build/gemm_cuda_check);
#    then (stage "wgmma") the JavaScript matmul / half-dtype tests again with the Hopper GEMM forced on
#    for every product it takes (KILN_GEMM_KERNEL=wgmma; by default it only gets the large ones), the
#    attention / nn tests and a memcheck with the Hopper attention kernels' alternative schedules, and
#    the attention benchmark with the fa2 kernels (KILN_ATTENTION_KERNEL=fa2) and with those schedules;
# 5. compute-sanitizer memcheck over the op tests (OUT/memcheck.txt);
# 6. (stage "icl") `kiln icl default --device cuda`: the ICL default recipe trained and evaluated on the GPU;
# 7. OUT/summary.txt: one page of all of it (scripts/gpu-summary.mjs).
# Each stage has a time limit; the whole check takes about 7 minutes when nothing hangs. KILN_GPU_STAGES picks stages
# (default "env tests checks wgmma bench memcheck icl"), KILN_GPU_BENCHES the benchmarks.
set -uo pipefail
OUT=${1:-${OUT:-/tmp/kiln-gpu-out}}
mkdir -p "$OUT"
cd "$(dirname "$0")/.."
exec > >(tee -a "$OUT/log.txt") 2>&1
stages=${KILN_GPU_STAGES:-env tests checks wgmma bench memcheck icl}
benches=${KILN_GPU_BENCHES:-attention gemm elementwise contrastive diffusion train-step}
export KILN_TORCH_PYTHON=${KILN_TORCH_PYTHON:-$(command -v python3)}
export KILN_ADDON=$PWD/build/Release/kiln.node
ava="node node_modules/ava/entrypoints/cli.mjs"
t0=$(date +%s)
stamp() { echo "== [$(( $(date +%s) - t0 ))s] $*"; }
has() { [[ " $stages " == *" $1 "* ]]; }

if has env; then
  stamp env
  { echo "snapshot $(cat .gpu-rev 2>/dev/null)"; nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv;
    echo "node $(node --version)"; "$KILN_TORCH_PYTHON" -c 'import torch; print("torch", torch.__version__, torch.version.cuda)';
    node -e "import('./dist/src/index.js').then(k => console.log('kiln cuda compiled', k.cuda.isCompiled(), 'available', k.cuda.isAvailable(), 'devices', k.cuda.deviceCount(), k.cuda.deviceName(0)))";
    nproc; } 2>&1 | tee "$OUT/env.txt"
fi

if has tests; then
  stamp "tests (whole suite, cuda variants included)"
  timeout ${KILN_GPU_TEST_TIMEOUT:-200} $ava --tap --concurrency 8 --timeout 3m > "$OUT/tests.tap" 2>&1
  echo "ava exit $?"
  echo "tests: ok $(grep -c '^ok' "$OUT/tests.tap"), not ok $(grep -c '^not ok' "$OUT/tests.tap"); cuda variants: ok $(grep '^ok' "$OUT/tests.tap" | grep -c '\[cuda\]'), not ok $(grep '^not ok' "$OUT/tests.tap" | grep -c '\[cuda\]'); pending CUDA kernels logged: $(grep -c 'pending CUDA kernel' "$OUT/tests.tap")"
  grep '^not ok' "$OUT/tests.tap" | head -40
  grep -A25 '^not ok' "$OUT/tests.tap" | grep -v '^ok' | head -150
fi

if has checks; then
  # Standalone kernel checks (plain CUDA programs built by scripts/gpu-pack.sh): correctness against
  # float64 references, then timings. gemm_cuda_check also checks and times the opt-in wgmma kernel
  # on compute capability 9.x (4096^3 and 8192^3 against mma.sync): 60 s for it, 40 s for the others.
  # The Hopper attention kernels run after fa2's figures, each check path in its own process (wg-f:
  # sm90 forward + fa2 backward, wg-fp / wg-fpp: the pipelined forward without / with pingpong between
  # the consumers, wg-b / wg-bk / wg-bs / wg-bq / wg-br / wg-bm / wg-bu / wg-bv / wg-bt: fa2 forward + sm90
  # backward, default / dQ split by keys / dV and dK's A from shared memory / from registers with dQ issued
  # first / dQ last / head dim 64's dQ summed over the consumers / dQ by the TMA unit's bulk reduction with
  # dV and dK's A from registers / from shared memory / head dim 64's 128-row query blocks, wg-g: both sm90
  # with the grouped block order, wg-fn / wg-bp: the persistent sm90 forward + fa2 backward / fa2 forward +
  # the persistent sm90 backward, wg-ba: head dim 64 with all three of session 11's variants, wg-f3 /
  # wg-f3a: head dim 64's 192-row forward blocks + fa2 backward, alone / grouped and persistent, wg: both
  # sm90), so that one that faults (an mbarrier
  # wait stuck for 20 s traps) cannot hide the others; a failure prints its diagnosis (block map,
  # moved rows or columns). Then their timings beside fa2.
  for c in build/attention_cuda_check build/gemm_cuda_check; do
    [ -x "$c" ] || continue
    stamp "$c"
    limit=${KILN_GPU_CHECK_TIMEOUT:-40}
    args=()
    [ "$c" = build/gemm_cuda_check ] && limit=${KILN_GPU_GEMM_CHECK_TIMEOUT:-60}
    [ "$c" = build/attention_cuda_check ] && args=(--no-wgmma)
    timeout "$limit" "$c" "${args[@]}" 2>&1 | tee -a "$OUT/checks.txt" | grep -v '^ok \|^skip ' | tail -60
    echo "exit ${PIPESTATUS[0]}"
  done
  if [ -x build/attention_cuda_check ]; then
    for p in wg-f wg-fp wg-fpp wg-b wg-bk wg-bs wg-bq wg-br wg-bm wg-bu wg-bv wg-bt wg-g wg-fn wg-bp wg-ba wg-f3 wg-f3a wg; do
      stamp "build/attention_cuda_check --sm90-only --no-time --paths $p"
      timeout ${KILN_GPU_CHECK_TIMEOUT:-40} build/attention_cuda_check --sm90-only --no-time --paths $p 2>&1 |
        tee -a "$OUT/checks.txt" | grep -v '^skip \|^diagnosis: ' | tail -120
      echo "exit ${PIPESTATUS[0]}"
    done
    stamp "build/attention_cuda_check --sm90-only --no-check (timings beside fa2)"
    timeout ${KILN_GPU_TIME_TIMEOUT:-90} build/attention_cuda_check --sm90-only --no-check 2>&1 | tee -a "$OUT/checks.txt" | tail -40
    echo "exit ${PIPESTATUS[0]}"
  fi
fi

if has wgmma; then
  stamp "matmul and half-dtype tests with KILN_GEMM_KERNEL=wgmma"
  KILN_GEMM_KERNEL=wgmma timeout ${KILN_GPU_WGMMA_TIMEOUT:-60} $ava --tap --concurrency 4 --timeout 2m \
    test/matmul-cuda.test.ts test/dtype-half.test.ts test/ops-reduce-matmul.test.ts > "$OUT/wgmma.tap" 2>&1
  echo "ava exit $?"
  echo "wgmma tests: ok $(grep -c '^ok' "$OUT/wgmma.tap"), not ok $(grep -c '^not ok' "$OUT/wgmma.tap")"
  grep -A25 '^not ok' "$OUT/wgmma.tap" | head -60
  # The Hopper attention kernels (the default on compute capability 9.x) with their alternative
  # schedules (pipelined + pingpong forward, backward with dV / dK's A from registers and dQ last):
  # the attention and nn tests through them (TAP appended to wgmma.tap), memcheck over the half-type
  # attention tests; then the benchmark with the fa2 kernels instead (KILN_ATTENTION_KERNEL=fa2) and
  # with those alternative schedules, beside the default's in the bench stage.
  alt="KILN_ATTENTION_SM90_FWD=pingpong KILN_ATTENTION_SM90_BWD=rs"
  stamp "attention and nn tests with $alt"
  env $alt timeout ${KILN_GPU_WGMMA_TIMEOUT:-60} $ava --tap --concurrency 4 --timeout 2m \
    test/attention.test.ts test/dtype-half.test.ts test/nn-cuda.test.ts > /tmp/kiln-wgmma-attn.tap 2>&1
  echo "ava exit $?"
  echo "attention tests with the alternative schedules: ok $(grep -c '^ok' /tmp/kiln-wgmma-attn.tap), not ok $(grep -c '^not ok' /tmp/kiln-wgmma-attn.tap)"
  grep -A25 '^not ok' /tmp/kiln-wgmma-attn.tap | head -60
  { echo "# $alt: test/attention.test.ts test/dtype-half.test.ts test/nn-cuda.test.ts"; cat /tmp/kiln-wgmma-attn.tap; } >> "$OUT/wgmma.tap"
  if command -v compute-sanitizer >/dev/null; then
    stamp "memcheck of the half-type attention tests with $alt"
    env $alt timeout ${KILN_GPU_WGMMA_MEMCHECK_TIMEOUT:-60} compute-sanitizer --tool memcheck --print-limit 10 \
      $ava --tap --concurrency 2 --timeout 2m test/dtype-half.test.ts > /tmp/kiln-wgmma-memcheck.txt 2>&1
    echo "memcheck exit $? (124 = stopped at its time limit)"
    grep -E 'ERROR SUMMARY|========= (Invalid|Program hit|Error)' /tmp/kiln-wgmma-memcheck.txt | sort | uniq -c | head -20
    echo "memcheck tests: ok $(grep -c '^ok' /tmp/kiln-wgmma-memcheck.txt), not ok $(grep -c '^not ok' /tmp/kiln-wgmma-memcheck.txt)"
  fi
  stamp "kiln bench attention --device cuda with KILN_ATTENTION_KERNEL=fa2"
  KILN_ATTENTION_KERNEL=fa2 timeout ${KILN_GPU_BENCH_TIMEOUT:-90} node dist/src/cli/main.js bench attention --device cuda \
    --json "$OUT/bench-attention-fa2.json" 2>&1 | tail -15
  stamp "kiln bench attention --device cuda with $alt"
  env $alt timeout ${KILN_GPU_BENCH_TIMEOUT:-90} node dist/src/cli/main.js bench attention --device cuda \
    --json "$OUT/bench-attention-alt.json" 2>&1 | tail -15
fi

if has bench; then
  mkdir -p /tmp/kiln-bench
  stamp "card yardsticks (torch)"
  (cd bench/reference && timeout 60 "$KILN_TORCH_PYTHON" torch_card.py) > /tmp/kiln-bench/card.json
  cat /tmp/kiln-bench/card.json
  for b in $benches; do
    stamp "kiln bench $b --device cuda"
    # KILN_BENCH_TORCH_BACKENDS: the attention bench also times each SDPA backend forced (notes under its table).
    KILN_BENCH_TORCH_BACKENDS=1 timeout ${KILN_GPU_BENCH_TIMEOUT:-90} node dist/src/cli/main.js bench "$b" --device cuda --json > "/tmp/kiln-bench/$b.json"
    echo "exit $?"
  done
  node -e "
    const fs = require('fs');
    import('./dist/bench/index.js').then(({ formatReport }) => {
      const all = { card: null, benches: {} }, text = [];
      try { all.card = JSON.parse(fs.readFileSync('/tmp/kiln-bench/card.json', 'utf8')); } catch (e) { all.card = { error: String(e) }; }
      for (const b of process.argv[1].split(' ')) {
        const raw = fs.existsSync('/tmp/kiln-bench/' + b + '.json') ? fs.readFileSync('/tmp/kiln-bench/' + b + '.json', 'utf8') : '';
        try { const r = JSON.parse(raw); all.benches[b] = r; text.push(formatReport(r)); }
        catch { all.benches[b] = { error: raw.slice(-2000) }; text.push('kiln bench ' + b + ': FAILED\n' + raw.slice(-2000)); }
      }
      fs.writeFileSync(process.argv[2] + '/bench.json', JSON.stringify(all, null, 1));
      fs.writeFileSync(process.argv[2] + '/bench.txt', 'card: ' + JSON.stringify(all.card) + '\n\n' + text.join('\n\n') + '\n');
    });" "$benches" "$OUT"
  cat "$OUT/bench.txt"
fi

if has memcheck; then
  stamp "compute-sanitizer memcheck (op tests)"
  if command -v compute-sanitizer >/dev/null; then
    timeout ${KILN_GPU_MEMCHECK_TIMEOUT:-120} compute-sanitizer --tool memcheck --target-processes all --print-limit 20 \
      $ava --tap --concurrency 4 --timeout 3m ${KILN_GPU_MEMCHECK_TESTS:-test/cuda-core.test.ts test/ops-elementwise.test.ts test/ops-reduce-matmul.test.ts test/ops-nn.test.ts test/optim.test.ts test/random.test.ts test/contrastive.test.ts test/diffusion.test.ts test/attention.test.ts test/matmul-cuda.test.ts test/dtype-half.test.ts test/nn-cuda.test.ts} > "$OUT/memcheck.txt" 2>&1
    echo "memcheck exit $? (124 = stopped at its time limit)"
    grep -E 'ERROR SUMMARY|========= (Invalid|Program hit|Error)' "$OUT/memcheck.txt" | sort | uniq -c | head -20
    echo "memcheck tests: ok $(grep -c '^ok' "$OUT/memcheck.txt"), not ok $(grep -c '^not ok' "$OUT/memcheck.txt")"
  else
    echo "compute-sanitizer not found" | tee "$OUT/memcheck.txt"
  fi
fi
if has icl; then
  stamp "ICL default recipe on cuda (kiln icl default --device cuda)"
  timeout ${KILN_GPU_ICL_TIMEOUT:-120} node dist/src/cli/main.js icl default --device cuda --out /tmp/kiln-icl-cuda --threads 8 2>&1 | tail -25
  echo "exit ${PIPESTATUS[0]}"
fi
# One page of what the run found (scripts/gpu-summary.mjs): the card, test and memcheck counts, the check
# verdicts, the attention timings per path, every bench ratio, and the issue-4 goal per configuration.
stamp summary
node scripts/gpu-summary.mjs "$OUT" | tee "$OUT/summary.txt"
stamp done
