#!/usr/bin/env bash
# Packs kiln's GPU check for a GPU machine that has no Node.js (see ../shared/gpu/README.md).
#   scripts/gpu-pack.sh [REV]      (default HEAD; run from the repository root)
# Builds a snapshot of REV in a separate worktree (so edits in progress never travel) with the CUDA
# kernels forced on (sm_80 + sm_90 + PTX, the CUDA runtime linked statically), compiles the
# TypeScript, and writes into .gpu/ (ignored by git):
#   .gpu/node.xz          this machine's Node.js binary (../shared/gpu/pack-node.sh)
#   .gpu/payload.tar.xz   the snapshot: package.json, src/, test/, bench/, scripts/, dist/, the addon
#                         (build/Release/kiln.node) and the node_modules the tests and benchmarks need.
# On the GPU machine, from the repository root:
#   mkdir -p /tmp/nodebin && xz -dc .gpu/node.xz > /tmp/nodebin/node && chmod +x /tmp/nodebin/node \
#     && export PATH=/tmp/nodebin:$PATH && mkdir -p /tmp/kiln && tar -xJf .gpu/payload.tar.xz -C /tmp/kiln \
#     && bash /tmp/kiln/scripts/gpu-check.sh "$OUT"
set -euo pipefail
root=$(git rev-parse --show-toplevel)
cd "$root"
rev=$(git rev-parse "${1:-HEAD}")
wt=${KILN_GPU_WORKTREE:-/tmp/kiln-gpu-worktree}
if [ ! -d "$wt/.git" ] && [ ! -f "$wt/.git" ]; then
  rm -rf "$wt"
  git worktree add --detach "$wt" "$rev" >/dev/null
else
  git -C "$wt" checkout -q --detach "$rev"
fi
[ -e "$wt/node_modules" ] || ln -s "$root/node_modules" "$wt/node_modules"
echo "gpu-pack: building $(git log -1 --format='%h %s' "$rev") in $wt"
(cd "$wt" && KILN_CUDA=1 node scripts/build-native.mjs >/tmp/kiln-gpu-build.log 2>&1) || { tail -30 /tmp/kiln-gpu-build.log; exit 1; }
(cd "$wt" && rm -rf dist && npx tsc -p tsconfig.json)
# The standalone kernel checks (sm_90 only: they run on the H100/H200).
for c in attention gemm; do
  [ -f "$wt/scripts/build-$c-check.sh" ] && (cd "$wt" && ARCHS=90 bash "scripts/build-$c-check.sh" >/dev/null)
done
checks=$(cd "$wt" && ls build/*_cuda_check 2>/dev/null || true)
mkdir -p .gpu
[ -f .gpu/node.xz ] || bash "$root/../shared/gpu/pack-node.sh" .gpu
# The dependency closure of what runs there (ava + tsx for the tests, fast-check, the runtime deps).
mods=$(node -e "
const fs = require('fs'), path = require('path');
const root = process.argv[1], seen = new Set();
const resolve = (n, from) => { for (let d = from; ; d = path.dirname(d)) { const p = path.join(d, 'node_modules', n);
  if (fs.existsSync(path.join(p, 'package.json'))) return p; if (path.dirname(d) === d) return null; } };
const walk = (dir) => { if (!dir || seen.has(dir)) return; seen.add(dir);
  const pj = JSON.parse(fs.readFileSync(path.join(dir, 'package.json')));
  for (const n of Object.keys({ ...pj.dependencies, ...pj.optionalDependencies })) walk(resolve(n, dir)); };
for (const n of ['ava', 'fast-check', 'tsx', 'cli-progress', 'vega', 'vega-lite']) walk(resolve(n, root));
console.log([...seen].map((s) => path.relative(root, s)).join('\n'));
" "$root")
(cd "$wt" && echo "$rev" > .gpu-rev && tar -chf - package.json tsconfig.json .gpu-rev src test bench scripts dist build/Release/kiln.node $checks \
  -C "$root" $mods) | xz -T2 -6 > .gpu/payload.tar.xz
echo "gpu-pack: .gpu/payload.tar.xz $(du -h .gpu/payload.tar.xz | cut -f1), .gpu/node.xz $(du -h .gpu/node.xz | cut -f1)"
