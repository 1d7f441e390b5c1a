// kiln's tensor-core kernels (kernels/cuda/gemm_sm90.cu, attention_{fwd,bwd}_sm90.cu, attention_fa2.cu,
// attention.cu; also contrastive.cu, diffusion.cu, gemm.cu, softmax.cu and reduce.cu) compiled with g++ and run on the host model of bench/native/cuda_host (mbarriers, TMA
// tile loads, asynchronous wgmma with in-flight operand checks, mma.sync, ldmatrix, cp.async, WMMA,
// barriers, shuffles; one fiber per CUDA thread): the GPU-validated gemm_sm90 and fa2 kernels must
// come out right (else the model is wrong), the CUDA attention dispatch must match the CPU attention
// on every path, and the Hopper attention kernels, forward and backward, must match float64 references. Two planted bugs (a barrier phase, a swizzle) must be
// caught, so that the check itself can fail. The parts run as concurrent processes (the suite's time). Needs g++ and perl (the addon's build needs them too).
import test from 'ava';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

const has = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;

type Run = { status: number | null; stdout: string; stderr: string };
/** Runs a command without blocking, so the parts of the check share the machine's cores. */
function run(cmd: string, args: string[], timeoutMs: number): Promise<Run> {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '', stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}

test('tensor-core kernels on the host model: gemm_sm90, fa2 and the Hopper attention kernels match float64', async (t) => {
  t.timeout(15 * 60_000);
  // (scripts/gpu-pack.sh's snapshot for GPU machines carries no kernel sources: there the GPU runs them.)
  if (!has('g++') || !has('perl') || !existsSync('kernels/cuda/attention_fwd_sm90.cu')) {
    t.log('skipped: g++, perl or the kernel sources missing');
    t.pass();
    return;
  }
  const b = spawnSync('bash', ['scripts/build-cuda-host.sh'], { encoding: 'utf8' });
  t.is(b.status, 0, b.stderr);
  // The check in four processes (the Hopper forward, its backward, the rest, and the fa2 and
  // contrastive kernels' --quick sets) and two planted bugs beside them. fa2's and nce's full sets
  // (about 110 s of CPU more, kernels unchanged since session 16) run in `build/cuda_host/run`, the
  // script to run when their sources change; the suite keeps within CI's time.
  const parts = [['--only', 'fwd'], ['--only', 'bwd'], ['--only', 'gemm,gemm.cu,dispatch,diffusion,rows,reduce'], ['--quick', '--only', 'fa2,nce']];
  const mutants = has('python3')
    ? run('python3', ['bench/native/cuda_host/mutants.py', '--quick', 'fwd-parity', 'bwd-swizzle'], 600_000)
    : undefined;
  const runs = await Promise.all(parts.map((args) => run('build/cuda_host/run', args, 420_000)));
  let passed = 0, cases = 0;
  for (const [i, r] of runs.entries()) {
    t.is(r.status, 0, `${parts[i].join(' ')}: ${r.stdout}${r.stderr}`);
    const m = /(\d+) of (\d+) cases passed/.exec(r.stdout);
    t.truthy(m, r.stdout);
    passed += Number(m![1]);
    cases += Number(m![2]);
  }
  const out = runs.map((r) => r.stdout).join('\n');
  t.is(passed, cases);
  t.true(cases >= 275, `${cases} cases`);
  t.regex(out, /PASS rows f32 6x1027 smoothing 0.3/);
  t.regex(out, /PASS reduce f32 \[2, 20000, 1\]/);
  t.regex(out, /PASS reduce i32 \[1, 20000, 1\] mode 3: sum overflow at -1 \(cpu -1\) cumsum overflow at -1 \(cpu -1\) cumsum rev overflow at 1 \(cpu 1\)/);
  t.regex(out, /PASS dispatch f32 D128 .* dropout -> basic/);
  t.regex(out, /PASS dispatch f32 D128 B1 H1 Tq200 Tk90 causal  \(f32 fa2 on\) -> fa2/);
  t.regex(out, /PASS dispatch f32 D32 .* key-lengths \(f32 fa2 on\) -> fa2/);
  t.regex(out, /PASS dispatch f32 D64 .* key-mask \(f32 fa2 on\) -> basic/);
  t.regex(out, /PASS dispatch f32 D128 .* \(f32 fa2 on\) smem 166912 -> fa2/);
  t.regex(out, /PASS fa2 bf16 D128 .* causal /);
  t.regex(out, /PASS gemm bf16 AtBt/);
  t.regex(out, /PASS bwd bf16 D128 .* causal dQ-by-columns/);
  t.regex(out, /PASS bwd bf16 D64 .* causal M128 dQ-by-rows .* persistent-2/);
  t.regex(out, /PASS fwd bf16 D128 .* grouped-9/);
  t.regex(out, /PASS fwd bf16 D64 .* causal pingpong persistent-2/);
  t.regex(out, /PASS fwd bf16 D64 B1 H1 Tq640 Tk640 causal M192 pipelined/);
  t.regex(out, /PASS fwd bf16 D64 .* M192 pipelined grouped-9 persistent-3/);
  t.notRegex(out, /FAIL/);

  if (!mutants) {
    t.log('planted bugs skipped: python3 missing');
    return;
  }
  const mu = await mutants;
  t.is(mu.status, 0, mu.stdout + mu.stderr);
  t.regex(mu.stdout, /caught fwd-parity .*deadlock/);
  t.regex(mu.stdout, /caught bwd-swizzle/);
});
