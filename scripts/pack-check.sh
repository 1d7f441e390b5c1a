#!/usr/bin/env bash
# What a user of the published package gets: `npm pack`s this checkout, installs the tarball into a
# fresh project (the install script builds the addon from the packed sources), then imports kiln
# from JavaScript, type-checks a TypeScript program against the packed declarations (with
# @types/node, as any Node TypeScript project has), and runs `npx kiln demo`.
#   bash scripts/pack-check.sh [WORK_DIR]     (default /tmp/kiln-pack-check; KILN_CUDA=0 unless set)
# About 3 minutes CPU-only on 2 cores; not part of CI (its time budget), run it before a release.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-/tmp/kiln-pack-check}
rm -rf "$work" && mkdir -p "$work/pkg" "$work/app"
cd "$root"
tarball=$(npm pack --silent --pack-destination "$work/pkg" | tail -1)
echo "== packed $tarball ($(du -h "$work/pkg/$tarball" | cut -f1))"
if tar -tzf "$work/pkg/$tarball" | grep -qE '^package/(test|bench/results|scratch|build)/'; then
  echo "FAIL: the tarball holds test/, bench/results/, scratch/ or build/"; exit 1
fi
cd "$work/app"
echo '{ "name": "kiln-pack-check", "version": "1.0.0", "private": true, "type": "module" }' > package.json
echo "== npm install (builds the addon)"
KILN_CUDA=${KILN_CUDA:-0} npm install --no-audit --no-fund "$work/pkg/$tarball" > install.log 2>&1 || { tail -30 install.log; exit 1; }
# TypeScript and @types/node from this checkout's own node_modules (nothing is downloaded).
mkdir -p node_modules/@types
cp -r "$root/node_modules/@types/node" node_modules/@types/ && cp -r "$root/node_modules/undici-types" node_modules/
cat > smoke.mjs <<'EOF'
import * as kiln from 'kiln';
const y = kiln.tensor([[1, 2], [3, 4]]).matmul(kiln.tensor([[1], [1]]));
if (JSON.stringify(y.toArray()) !== '[[3],[7]]') throw new Error('matmul gave ' + JSON.stringify(y.toArray()));
try { kiln.matmul(kiln.zeros([2, 3]), kiln.zeros([2, 3])); throw new Error('no error'); }
catch (e) { if (!(e instanceof kiln.KilnError) || e.code !== 'SHAPE_MISMATCH') throw e; }
console.log('import ok: matmul, KilnError');
EOF
node smoke.mjs
cat > typed.ts <<'EOF'
import * as kiln from 'kiln';
const model = new kiln.nn.Sequential(new kiln.nn.Linear(4, 8), new kiln.nn.ReLU(), new kiln.nn.Linear(8, 2));
const opt = new kiln.optim.AdamW(model.parameters(), { lr: 1e-2 });
const x: kiln.Tensor = kiln.randn([16, 4]);
const loss = kiln.crossEntropy(model.forward(x), kiln.randint(0, 2, [16]));
loss.backward();
opt.step();
const n: number = loss.item();
console.log(n);
EOF
cat > tsconfig.json <<'EOF'
{ "compilerOptions": { "module": "nodenext", "target": "es2022", "strict": true, "noEmit": true, "types": ["node"] }, "files": ["typed.ts"] }
EOF
"$root/node_modules/.bin/tsc" -p tsconfig.json && echo "types ok: a strict TypeScript program compiles against the packed declarations"
npx --no-install kiln demo | tail -1
echo "pack check passed"
