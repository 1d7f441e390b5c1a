// kiln's tensor-core kernels (kernels/cuda/gemm_sm90.cu, attention_{fwd,bwd}_sm90.cu, attention_fa2.cu,
// attention.cu) compiled with g++ and run on the host model of bench/native/cuda_host (mbarriers, TMA
// tile loads, asynchronous wgmma with in-flight operand checks, mma.sync, ldmatrix, cp.async, WMMA,
// barriers, shuffles; one fiber per CUDA thread): the GPU-validated gemm_sm90 and fa2 kernels must
// come out right (else the model is wrong), the CUDA attention dispatch must match the CPU attention
// on every path, and the Hopper attention kernels, forward and backward, must match float64 references. Then two planted bugs (a barrier phase, a swizzle) must be
// caught, so that the check itself can fail. Needs g++ and perl (the addon's build needs them too).
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

const has = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;

test('tensor-core kernels on the host model: gemm_sm90, fa2 and the Hopper attention kernels match float64', (t) => {
  // (scripts/gpu-pack.sh's snapshot for GPU machines carries no kernel sources: there the GPU runs them.)
  if (!has('g++') || !has('perl') || !existsSync('kernels/cuda/attention_fwd_sm90.cu')) {
    t.log('skipped: g++, perl or the kernel sources missing');
    t.pass();
    return;
  }
  const b = spawnSync('bash', ['scripts/build-cuda-host.sh'], { encoding: 'utf8' });
  t.is(b.status, 0, b.stderr);
  const r = spawnSync('build/cuda_host/run', [], { encoding: 'utf8', timeout: 420_000 });
  t.is(r.status, 0, r.stdout + r.stderr);
  const m = /(\d+) of (\d+) cases passed/.exec(r.stdout);
  t.truthy(m, r.stdout);
  t.is(m![1], m![2]);
  t.true(Number(m![2]) >= 263, r.stdout);
  t.regex(r.stdout, /PASS dispatch f32 D128 .* dropout -> basic/);
  t.regex(r.stdout, /PASS dispatch f32 D128 B1 H1 Tq200 Tk90 causal  \(f32 fa2 on\) -> fa2/);
  t.regex(r.stdout, /PASS dispatch f32 D32 .* key-lengths \(f32 fa2 on\) -> fa2/);
  t.regex(r.stdout, /PASS dispatch f32 D64 .* key-mask \(f32 fa2 on\) -> basic/);
  t.regex(r.stdout, /PASS fa2 bf16 D128 .* causal key-lengths/);
  t.regex(r.stdout, /PASS gemm bf16 AtBt/);
  t.regex(r.stdout, /PASS bwd bf16 D128 .* causal dQ-by-columns/);
  t.regex(r.stdout, /PASS bwd bf16 D64 .* causal M128 dQ-by-rows .* persistent-2/);
  t.regex(r.stdout, /PASS fwd bf16 D128 .* grouped-9/);
  t.regex(r.stdout, /PASS fwd bf16 D64 .* causal pingpong persistent-2/);
  t.regex(r.stdout, /PASS fwd bf16 D64 B1 H1 Tq640 Tk640 causal M192 pipelined/);
  t.regex(r.stdout, /PASS fwd bf16 D64 .* M192 pipelined grouped-9 persistent-3/);
  t.notRegex(r.stdout, /FAIL/);

  if (!has('python3')) {
    t.log('planted bugs skipped: python3 missing');
    return;
  }
  const mu = spawnSync('python3', ['bench/native/cuda_host/mutants.py', '--quick', 'fwd-parity', 'bwd-swizzle'], {
    encoding: 'utf8',
    timeout: 240_000,
  });
  t.is(mu.status, 0, mu.stdout + mu.stderr);
  t.regex(mu.stdout, /caught fwd-parity .*deadlock/);
  t.regex(mu.stdout, /caught bwd-swizzle/);
});
