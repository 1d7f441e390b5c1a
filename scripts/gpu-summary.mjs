#!/usr/bin/env node
// One page out of a scripts/gpu-check.sh output folder: the card, the test and memcheck counts, every
// standalone check run's verdict, the attention kernels' timings per path (fa2, basic, the Hopper
// schedules) and every `kiln bench --device cuda` ratio against PyTorch, with the issue-4 goal's
// answer (bf16 causal fwd+bwd, T 1k-8k, D 64/128, >= 1.0x SDPA) for each attention configuration run.
// gpu-check.sh runs it last (OUT/summary.txt); it reads only what is there, so a partial run still
// gets a partial page.
//   node scripts/gpu-summary.mjs OUT_DIR
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const read = (dir, f) => (existsSync(join(dir, f)) ? readFileSync(join(dir, f), 'utf8') : null);
const json = (dir, f) => {
  const t = read(dir, f);
  if (t === null) return null;
  try {
    return JSON.parse(t);
  } catch {
    return null;
  }
};

/** `ok` / `not ok` counts of a TAP file, and the [cuda] variants among them. */
export function tapCounts(text) {
  const lines = text.split('\n');
  const ok = lines.filter((l) => /^ok /.test(l)), bad = lines.filter((l) => /^not ok /.test(l));
  return { ok: ok.length, notOk: bad.length, cudaOk: ok.filter((l) => l.includes('[cuda]')).length, failed: bad.map((l) => l.replace(/^not ok \d+ - /, '')) };
}

/** The `time <path> B= H= T= D= causal|full fwd .. bwd .. fwd+bwd ..` lines of attention_cuda_check. */
export function parseTimes(text) {
  const re = /^time (\S+)\s+B=(\d+)\s+H=(\d+)\s+T=(\d+)\s+D=(\d+)\s+(causal|full)\s+fwd\s+([\d.]+) ms\s+([\d.]+) TF\/s\s+bwd\s+([\d.]+) ms\s+([\d.]+) TF\/s\s+fwd\+bwd\s+([\d.]+) ms\s+([\d.]+) TF\/s/;
  const out = [];
  for (const line of text.split('\n')) {
    const m = re.exec(line);
    if (!m) continue;
    out.push({ path: m[1], B: +m[2], H: +m[3], T: +m[4], D: +m[5], causal: m[6] === 'causal', fwdMs: +m[7], fwdTf: +m[8], bwdMs: +m[9], bwdTf: +m[10], ms: +m[11], tf: +m[12] });
  }
  return out;
}

/** The verdict lines of each attention_cuda_check / gemm_cuda_check run (`PASS: 0 failure(s)`) and the FAIL lines. */
export function parseChecks(text) {
  const lines = text.split('\n');
  return {
    verdicts: lines.filter((l) => /^(PASS|FAIL): \d+ failure\(s\)/.test(l)),
    failures: lines.filter((l) => /\bFAIL\b/.test(l) && !/^(PASS|FAIL): \d+ failure/.test(l) && !/^diagnosis: /.test(l)),
  };
}

/** The issue-4 goal over a bench attention report: bf16 causal fwd+bwd rows, the worst ratio. */
export function attentionGoal(report) {
  const rows = (report?.rows ?? []).filter((r) => /^bfloat16 .* causal$/.test(r.case) && typeof r.speedup === 'number');
  if (!rows.length) return null;
  const worst = rows.reduce((a, r) => (r.speedup < a.speedup ? r : a));
  return { rows, worst, met: rows.every((r) => r.speedup >= 1.0) };
}

const f = (x, d = 2) => (typeof x === 'number' && Number.isFinite(x) ? x.toFixed(d) : '-');

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/**
 * Each fwd+bwd case's best configuration over several bench attention reports of one run ([name,
 * report] pairs): the highest kiln TFLOP/s, against the median of PyTorch's rates over the reports
 * (PyTorch's time for one case moves between benches of a run, so one report's ratio alone can
 * mislead). `goal`: the issue-4 answer if each bf16 case took its best configuration.
 */
export function bestPerCase(configs) {
  const cases = new Map();
  for (const [name, rep] of configs)
    for (const r of rep?.rows ?? []) {
      if (!/ causal$/.test(r.case) || typeof r.kilnRate !== 'number') continue;
      if (!cases.has(r.case)) cases.set(r.case, []);
      cases.get(r.case).push({ name, kiln: r.kilnRate, torch: r.torchRate });
    }
  const rows = [...cases].map(([c, runs]) => {
    const best = runs.reduce((a, r) => (r.kiln > a.kiln ? r : a));
    const torch = runs.map((r) => r.torch).filter((x) => typeof x === 'number' && x > 0);
    const tm = torch.length ? median(torch) : undefined;
    return { case: c, runs, best, torch: tm, ratio: tm ? best.kiln / tm : undefined };
  });
  const bf = rows.filter((r) => r.case.startsWith('bfloat16') && typeof r.ratio === 'number');
  const goal = bf.length ? { met: bf.every((r) => r.ratio >= 1.0), worst: bf.reduce((a, r) => (r.ratio < a.ratio ? r : a)) } : null;
  return { rows, goal };
}

/** The bench attention reports of a run folder: [name, report] pairs, the default first. */
function attentionReports(dir) {
  const bench = json(dir, 'bench.json');
  // gpu-check.sh: bench.json's attention and named alternatives; gpu-attention-quick.sh:
  // bench-attention.json (the defaults), bench-attention-alt-N.json with N's environment in alts.txt.
  const out = [['default', bench?.benches?.attention ?? json(dir, 'bench-attention.json')], ['KILN_ATTENTION_KERNEL=fa2', json(dir, 'bench-attention-fa2.json')],
    ['alternative Hopper schedules (pingpong forward, backward A from registers)', json(dir, 'bench-attention-alt.json')],
    ['wgmma', json(dir, 'bench-attention-wgmma.json')], ['wgmma pingpong + dQ by keys', json(dir, 'bench-attention-wgmma-pp.json')],
    ['KILN_ATTENTION_SM90_BWD=bulk', json(dir, 'bench-attention-bulk.json')]];
  for (const line of (read(dir, 'alts.txt') ?? '').split('\n')) {
    const m = /^(\d+) (.+)$/.exec(line.trim());
    if (m) out.push([m[2], json(dir, `bench-attention-alt-${m[1]}.json`)]);
  }
  return out.filter(([, rep]) => rep && !rep.error);
}

export function summarize(dir) {
  const out = [];
  const env = read(dir, 'env.txt');
  if (env) {
    const card = env.split('\n').find((l) => /^NVIDIA|^[A-Z].*GB/.test(l) && l.includes(','));
    out.push(`card: ${card ?? '?'}; ${env.split('\n').filter((l) => /^torch |^snapshot |^node /.test(l)).join('; ')}`);
  }
  for (const [file, what] of [['tests.tap', 'test suite'], ['wgmma.tap', 'wgmma-forced / alternative-schedule tests'], ['memcheck.txt', 'memcheck tests']]) {
    const t = read(dir, file);
    if (t === null) continue;
    const c = tapCounts(t);
    out.push(`${what}: ok ${c.ok}, not ok ${c.notOk}${file === 'tests.tap' ? ` ([cuda] ok ${c.cudaOk})` : ''}${c.failed.length ? `; failed: ${c.failed.slice(0, 8).join(' | ')}` : ''}`);
    if (file === 'memcheck.txt') {
      const errs = t.split('\n').filter((l) => /ERROR SUMMARY/.test(l));
      out.push(`memcheck: ${errs.length ? [...new Set(errs.map((l) => l.replace(/^=+\s*/, '')))].join(', ') : 'no ERROR SUMMARY line'}`);
    }
  }
  const checks = read(dir, 'checks.txt');
  if (checks) {
    const c = parseChecks(checks);
    out.push(`standalone checks: ${c.verdicts.length ? c.verdicts.join(' / ') : 'no verdict line'}${c.failures.length ? `; FAIL lines: ${c.failures.length}` : ''}`);
    for (const l of c.failures.slice(0, 10)) out.push(`  ${l.trim()}`);
    const times = parseTimes(checks);
    if (times.length) {
      out.push('', 'attention kernels, fwd+bwd TFLOP/s (fwd / bwd) per path, attention_cuda_check:');
      const shapes = [...new Set(times.map((t) => `B=${t.B} H=${t.H} T=${t.T} D=${t.D} ${t.causal ? 'causal' : 'full'}`))];
      for (const s of shapes) {
        const here = times.filter((t) => `B=${t.B} H=${t.H} T=${t.T} D=${t.D} ${t.causal ? 'causal' : 'full'}` === s);
        const best = here.reduce((a, t) => (t.tf > a.tf ? t : a));
        out.push(`  ${s.padEnd(30)} ${here.map((t) => `${t.path} ${f(t.tf, 1)} (${f(t.fwdTf, 0)}/${f(t.bwdTf, 0)})`).join('  ')}  best: ${best.path}`);
      }
    }
  }
  const bench = json(dir, 'bench.json');
  if (bench?.card && !bench.card.error)
    out.push('', `card yardsticks (torch): bf16 mm ${f(bench.card.mm_bfloat16_8192_tflops, 0)} TFLOP/s (8192^3), copy ${f(bench.card.copy_gbps, 0)} GB/s`);
  // Runs before session 9 (fa2 the default) saved wgmma / wgmma-pp; later ones fa2 / alt.
  const configs = attentionReports(dir);
  const mm = bench?.card?.mm_bfloat16_8192_tflops;
  for (const [name, rep] of configs) {
    out.push('', `kiln bench attention --device cuda, ${name}:`);
    for (const r of rep.rows ?? [])
      out.push(`  ${r.case.padEnd(40)} kiln ${f(r.kilnRate, 1)} TF/s${mm && r.case.startsWith('bfloat16') ? ` (${f((100 * r.kilnRate) / mm, 0)}% of bf16 mm)` : ''}  torch ${f(r.torchRate, 1)}  ratio ${f(r.speedup)}x`);
    for (const n of rep.notes ?? []) out.push(`  ${n}`);
    const g = attentionGoal(rep);
    if (g) out.push(`  issue 4 goal (bf16 causal fwd+bwd >= 1.0x SDPA at every case): ${g.met ? 'MET' : 'not met'}; worst ${f(g.worst.speedup)}x at ${g.worst.case}`);
  }
  if (configs.length > 1) {
    const b = bestPerCase(configs);
    out.push('', `best configuration per case over the ${configs.length} attention benches (kiln TF/s; ratio against the median PyTorch rate of the benches):`);
    for (const r of b.rows)
      out.push(`  ${r.case.padEnd(40)} best ${r.best.name} ${f(r.best.kiln, 1)}  (${r.runs.filter((x) => x !== r.best).map((x) => `${x.name} ${f(x.kiln, 1)}`).join(', ')})  torch ${f(r.torch, 1)}  ratio ${f(r.ratio)}x`);
    if (b.goal) out.push(`  issue 4 goal with each case's best configuration: ${b.goal.met ? 'MET' : 'not met'}; worst ${f(b.goal.worst.ratio)}x at ${b.goal.worst.case} (${b.goal.worst.best.name})`);
  }
  for (const [b, rep] of Object.entries(bench?.benches ?? {})) {
    if (b === 'attention') continue;
    if (!rep || rep.error) {
      out.push('', `kiln bench ${b}: FAILED`);
      continue;
    }
    out.push('', `kiln bench ${b} --device cuda:`);
    for (const r of rep.rows ?? []) out.push(`  ${r.case.padEnd(40)} ratio ${r.speedup === undefined ? '-' : `${f(r.speedup)}x`}`);
  }
  return out.join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const dir = process.argv[2];
  if (!dir) {
    console.error('usage: node scripts/gpu-summary.mjs OUT_DIR');
    process.exit(2);
  }
  console.log(summarize(dir));
}
