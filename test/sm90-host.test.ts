// kiln's Hopper kernels (kernels/cuda/gemm_sm90.cu, attention_{fwd,bwd}_sm90.cu) compiled with g++ and
// run on the host model of bench/native/sm90_host (mbarriers, TMA tile loads, asynchronous wgmma with
// in-flight operand checks, barriers, shuffles; one fiber per CUDA thread): the GPU-validated
// gemm_sm90 must come out exact (else the model is wrong), and the attention kernels, forward and
// backward, must match float64 references. Then two planted bugs (a barrier phase, a swizzle) must be
// caught, so that the check itself can fail. Needs g++ and perl (the addon's build needs them too).
import test from 'ava';
import { spawnSync } from 'node:child_process';

const has = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;

test('Hopper kernels on the host model: gemm_sm90 exact, attention forward and backward match float64', (t) => {
  if (!has('g++') || !has('perl')) {
    t.log('skipped: g++ or perl missing');
    t.pass();
    return;
  }
  const b = spawnSync('bash', ['scripts/build-sm90-host.sh'], { encoding: 'utf8' });
  t.is(b.status, 0, b.stderr);
  const r = spawnSync('build/sm90_host/run', [], { encoding: 'utf8', timeout: 240_000 });
  t.is(r.status, 0, r.stdout + r.stderr);
  const m = /(\d+) of (\d+) cases passed/.exec(r.stdout);
  t.truthy(m, r.stdout);
  t.is(m![1], m![2]);
  t.true(Number(m![2]) >= 69, r.stdout);
  t.regex(r.stdout, /PASS gemm bf16 AtBt/);
  t.regex(r.stdout, /PASS bwd bf16 D128 .* causal dQ-by-columns/);
  t.notRegex(r.stdout, /FAIL/);

  if (!has('python3')) {
    t.log('planted bugs skipped: python3 missing');
    return;
  }
  const mu = spawnSync('python3', ['bench/native/sm90_host/mutants.py', 'fwd-parity', 'bwd-swizzle'], {
    encoding: 'utf8',
    timeout: 240_000,
  });
  t.is(mu.status, 0, mu.stdout + mu.stderr);
  t.regex(mu.stdout, /caught fwd-parity .*deadlock/);
  t.regex(mu.stdout, /caught bwd-swizzle/);
});
