// safetensors checkpoints: round trip of model + optimizer + RNG, PyTorch-side reading and writing
// (parsed by hand with struct/json/numpy, as the safetensors package may be absent), refusal of
// truncated and corrupt files, strict state-dict loading that never half-loads.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as kiln from '../src/index.js';
import { decodeSafetensors, encodeSafetensors, loadSafetensors, saveSafetensors } from '../src/io/safetensors.js';
import { loadCheckpoint, saveCheckpoint } from '../src/nn/checkpoint.js';

const dir = mkdtempSync(join(tmpdir(), 'kiln-ckpt-'));
const cfg = { nLayer: 2, nHead: 2, nEmbd: 16, vocabSize: 20, blockSize: 8 };

function trainSteps(model: kiln.nn.GPT, opt: kiln.optim.Optimizer<any>, n: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    out.push(kiln.tidy(() => {
      const x = kiln.randint(0, 20, [2, 8]);
      opt.zeroGrad();
      const loss = kiln.crossEntropy(model.forward(x).reshape([-1, 20]), x.reshape([-1]));
      loss.backward();
      opt.step();
      return loss.item();
    }));
  }
  return out;
}

test('checkpoint round trip resumes with identical losses', (t) => {
  kiln.manualSeed(1);
  const a = new kiln.nn.GPT(cfg);
  const optA = new kiln.optim.AdamW(a.parameters(), { lr: 1e-2 });
  trainSteps(a, optA, 3);
  const path = join(dir, 'a.safetensors');
  saveCheckpoint(path, { model: a, optimizer: optA, config: cfg, extra: { note: 'x' } });
  const cont = trainSteps(a, optA, 3);

  kiln.manualSeed(99); // a different stream: loading must restore the saved one
  const b = new kiln.nn.GPT(cfg);
  const optB = new kiln.optim.AdamW(b.parameters(), { lr: 1e-2 });
  const { meta } = loadCheckpoint(path, { model: b, optimizer: optB });
  t.is(meta.step, 3);
  t.deepEqual(meta.config, cfg);
  t.deepEqual(meta.extra, { note: 'x' });
  t.is(optB.stepCount, 3);
  t.deepEqual(trainSteps(b, optB, 3), cont);
});

test('safetensors layout: header length, 8-byte padding, dtypes, offsets, metadata', (t) => {
  const buf = encodeSafetensors(
    { a: kiln.tensor([[1, 2, 3], [4, 5, 6]]), i: kiln.tensor([7, -8], { dtype: 'int32' }), d: kiln.tensor([0.1], { dtype: 'float64' }) },
    { k: 'v' },
  );
  const n = Number(buf.readBigUInt64LE(0));
  t.is(n % 8, 0);
  const header = JSON.parse(buf.subarray(8, 8 + n).toString());
  t.deepEqual(header.a, { dtype: 'F32', shape: [2, 3], data_offsets: [0, 24] });
  t.deepEqual(header.i, { dtype: 'I32', shape: [2], data_offsets: [24, 32] });
  t.deepEqual(header.d, { dtype: 'F64', shape: [1], data_offsets: [32, 40] });
  t.deepEqual(header.__metadata__, { k: 'v' });
  t.is(buf.length, 8 + n + 40);
  t.is(buf.readFloatLE(8 + n + 20), 6);
  t.is(buf.readInt32LE(8 + n + 28), -8);
  t.is(buf.readDoubleLE(8 + n + 32), 0.1);
  const back = decodeSafetensors(buf);
  t.deepEqual(back.tensors.a.toArray(), [[1, 2, 3], [4, 5, 6]]);
  t.deepEqual(back.tensors.i.toArray(), [7, -8]);
  t.is(back.tensors.i.dtype, 'int32');
  t.deepEqual(back.metadata, { k: 'v' });
});

const PY = `
import json, struct, sys
import numpy as np
import torch
def read(path):
    b = open(path, 'rb').read()
    n = struct.unpack('<Q', b[:8])[0]
    h = json.loads(b[8:8 + n])
    meta = h.pop('__metadata__', {})
    dt = {'F32': np.float32, 'I32': np.int32, 'F64': np.float64}
    out = {}
    for k, e in h.items():
        s, en = e['data_offsets']
        out[k] = torch.from_numpy(np.frombuffer(b[8 + n + s:8 + n + en], dtype=dt[e['dtype']]).reshape(e['shape']).copy())
    return out, meta
def write(path, tensors, meta):
    names = {torch.float32: 'F32', torch.int32: 'I32', torch.float64: 'F64'}
    h, blobs, off = {'__metadata__': meta}, [], 0
    for k, t in tensors.items():
        raw = t.contiguous().numpy().tobytes()
        h[k] = {'dtype': names[t.dtype], 'shape': list(t.shape), 'data_offsets': [off, off + len(raw)]}
        blobs.append(raw); off += len(raw)
    hb = json.dumps(h).encode()
    hb += b' ' * ((8 - len(hb) % 8) % 8)
    open(path, 'wb').write(struct.pack('<Q', len(hb)) + hb + b''.join(blobs))
sd, meta = read(sys.argv[1])
kiln_meta = json.loads(meta['kiln'])
model_keys = [k for k in sd if not k.startswith('optimizer.')]
# The model tensors form a PyTorch state dict: run the tied LM head on the final layer norm's bias.
logit = (sd['lnF.bias'] @ sd['wte.weight'].t()).sum().item()
print(json.dumps({'keys': model_keys, 'sums': {k: sd[k].double().sum().item() for k in sd}, 'step': kiln_meta['step'],
                  'format': meta['format'], 'logit': logit}))
write(sys.argv[2], {'w': torch.arange(6, dtype=torch.float32).reshape(2, 3) / 4, 'n': torch.tensor([3, -1], dtype=torch.int32),
                    'd': torch.tensor([1e-300], dtype=torch.float64)}, {'from': 'torch'})
`;

test('PyTorch reads kiln checkpoints and kiln reads PyTorch-written safetensors', (t) => {
  const probe = spawnSync('/usr/bin/python3', ['-c', 'import torch, numpy'], { encoding: 'utf8' });
  if (probe.status !== 0) {
    t.log('skipped: /usr/bin/python3 with torch and numpy is not available');
    t.pass();
    return;
  }
  kiln.manualSeed(2);
  const m = new kiln.nn.GPT(cfg);
  const opt = new kiln.optim.Adam(m.parameters(), { lr: 1e-3 });
  trainSteps(m, opt, 2);
  const path = join(dir, 'for-torch.safetensors');
  const back = join(dir, 'from-torch.safetensors');
  saveCheckpoint(path, { model: m, optimizer: opt });
  const r = spawnSync('/usr/bin/python3', ['-c', PY, path, back], { encoding: 'utf8' });
  t.is(r.status, 0, r.stderr);
  const got = JSON.parse(r.stdout);
  t.deepEqual(got.keys, m.namedParameters().map(([n]) => n));
  t.is(got.step, 2);
  t.is(got.format, 'pt');
  for (const [n, p] of m.namedParameters()) t.true(Math.abs(got.sums[n] - (p.sum().item() as number)) < 1e-4, n);
  const expectLogit = kiln.matmul(m.lnF.bias!, m.wte!.weight.T).sum().item();
  t.true(Math.abs(got.logit - expectLogit) < 1e-4);
  t.true('optimizer.0.exp_avg' in got.sums && 'optimizer.0.exp_avg_sq' in got.sums);
  const f = loadSafetensors(back);
  t.deepEqual(f.tensors.w.toArray(), [[0, 0.25, 0.5], [0.75, 1, 1.25]]);
  t.deepEqual(f.tensors.n.toArray(), [3, -1]);
  t.is(f.tensors.d.dtype, 'float64');
  t.is(f.tensors.d.item(), 1e-300);
  t.deepEqual(f.metadata, { from: 'torch' });
});

function corruptCode(t: any, bytes: Uint8Array, pattern: RegExp): void {
  const p = join(dir, `bad-${Math.random().toString(36).slice(2)}.safetensors`);
  writeFileSync(p, bytes);
  const e = t.throws(() => loadCheckpoint(p, {}));
  t.is(e.code, 'CHECKPOINT_CORRUPT', e.message);
  t.regex(e.message, pattern);
}

test('truncated and corrupt files are refused with CHECKPOINT_CORRUPT naming the problem', (t) => {
  kiln.manualSeed(3);
  const m = new kiln.nn.GPT(cfg);
  const path = join(dir, 'good.safetensors');
  saveCheckpoint(path, { model: m });
  const good = readFileSync(path);
  const n = Number(good.readBigUInt64LE(0));
  corruptCode(t, good.subarray(0, 5), /shorter than the 8-byte header/);
  corruptCode(t, good.subarray(0, 8 + n - 10), /header length .* larger than/);
  corruptCode(t, good.subarray(0, good.length - 1), /truncated/);
  const badJson = Buffer.from(good);
  badJson[8] = 0x5b; // '[' instead of '{'
  corruptCode(t, badJson, /not valid JSON|not a JSON object/);
  const huge = Buffer.from(good);
  huge.writeBigUInt64LE(1n << 60n, 0);
  corruptCode(t, huge, /header length/);
  const mk = (header: object, data = 0) => {
    const h = Buffer.from(JSON.stringify(header));
    const b = Buffer.alloc(8 + h.length + data);
    b.writeBigUInt64LE(BigInt(h.length), 0);
    h.copy(b, 8);
    return b;
  };
  corruptCode(t, mk({ a: { dtype: 'F8_E4M3', shape: [1], data_offsets: [0, 1] } }, 1), /dtype F8_E4M3/);
  corruptCode(t, mk({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 4] } }, 8), /needs 8 bytes/);
  corruptCode(t, mk({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, 8), /overlap/);
  corruptCode(t, mk({ a: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, 4), /bad shape/);
  corruptCode(t, mk({ a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, 4), /no kiln checkpoint metadata/);
  // A plain (metadata-free) safetensors file still loads as tensors.
  t.deepEqual(decodeSafetensors(mk({ a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, 4)).tensors.a.toArray(), [0]);
});

test('holes, trailing bytes and duplicate names are refused; "__proto__" is an ordinary tensor name', (t) => {
  const mk = (json: string, data: number) => {
    const h = Buffer.from(json);
    const b = Buffer.alloc(8 + h.length + data);
    b.writeBigUInt64LE(BigInt(h.length), 0);
    h.copy(b, 8);
    return b;
  };
  const f32 = (o: number) => `{"dtype":"F32","shape":[1],"data_offsets":[${o},${o + 4}]}`;
  t.throws(() => decodeSafetensors(mk(`{"a":${f32(0)}}`, 8)), { message: /\[4, 8\) at the end belong to no tensor/ }, 'trailing bytes');
  t.throws(() => decodeSafetensors(mk(`{"a":${f32(0)},"b":${f32(8)}}`, 12)), { message: /\[4, 8\) before tensor 'b'/ }, 'a hole');
  t.throws(() => decodeSafetensors(mk(`{"a":${f32(0)},"a":${f32(4)}}`, 8)), { message: /belong to no tensor/ }, 'a duplicate name');
  t.is(decodeSafetensors(mk(`{"a":${f32(0)},"e":{"dtype":"F32","shape":[0],"data_offsets":[4,4]}}`, 4)).tensors.e.size, 0, 'an empty tensor');
  kiln.tidy(() => {
    const back = decodeSafetensors(encodeSafetensors({ ['__proto__']: kiln.tensor([1, 2]), b: kiln.tensor([3]) } as never));
    t.deepEqual(Object.keys(back.tensors).sort(), ['__proto__', 'b']);
    t.deepEqual(back.tensors['__proto__'].toArray(), [1, 2]);
  });
  t.is(t.throws(() => decodeSafetensors('str' as never))!.constructor, kiln.KilnError);
  t.is(t.throws(() => saveSafetensors(join(dir, 'no-such-dir', 'x.safetensors'), {}))!.constructor, kiln.KilnError);
});

test('loadCheckpoint checks the RNG, scheduler and optimizer state before changing anything; optimizers check every group', (t) => {
  kiln.manualSeed(4);
  const m = new kiln.nn.GPT(cfg);
  const opt = new kiln.optim.AdamW(m.parameters(), { lr: 1e-3 });
  trainSteps(m, opt, 2);
  const path = join(dir, 'meta.safetensors');
  saveCheckpoint(path, { model: m, optimizer: opt });
  const file = loadSafetensors(path);
  const meta = JSON.parse(file.metadata.kiln);
  const withMeta = (edit: (x: any) => void) => {
    const mm = JSON.parse(JSON.stringify(meta));
    edit(mm);
    const p = join(dir, 'meta-bad.safetensors');
    saveSafetensors(p, file.tensors, { ...file.metadata, kiln: JSON.stringify(mm) });
    return p;
  };
  const fresh = new kiln.nn.GPT(cfg), fopt = new kiln.optim.AdamW(fresh.parameters(), { lr: 1e-3 });
  const before = fresh.parameters()[0].dataSync().slice(), rng = kiln.getRngState();
  for (const [what, edit, re] of [
    ['step fractional', (x: any) => (x.step = 2.5), /step 2\.5 is not an integer >= 0/],
    ['step negative', (x: any) => (x.step = -1), /step -1 is not an integer >= 0/],
    ['step a string', (x: any) => (x.step = '2'), /step "2" is not an integer >= 0/],
    ['version', (x: any) => (x.version = 7), /checkpoint version 7; this kiln reads version 1/],
    ['rng seed', (x: any) => (x.rng.seed = 'xyz'), /seed "xyz" is not an integer/],
    ['rng offset', (x: any) => (x.rng.offset = -8), /offset must be an integer/],
    ['optimizer step', (x: any) => (x.optimizer.step = 'abc'), /step must be an integer/],
    ['group lr', (x: any) => (x.optimizer.groups[0].lr = -5), /group 0\): lr must be finite/],
    ['group betas', (x: any) => (x.optimizer.groups[0].betas = [5, -1]), /betas must be in \[0, 1\)/],
    ['a missing slot', (x: any) => delete x.optimizer.state[0].exp_avg_sq, /parameter 0 has state \[exp_avg\], want/],
    ['groups[0] null', (x: any) => (x.optimizer.groups[0] = null), /not lists of objects/],
  ] as const) {
    const e = t.throws(() => loadCheckpoint(withMeta(edit), { model: fresh, optimizer: fopt }), { instanceOf: kiln.KilnError }, what);
    if (/^(step|version|rng)/.test(what)) t.is((e as kiln.KilnError).code, 'CHECKPOINT_CORRUPT', what);
    t.regex(e!.message, re, what);
    t.deepEqual(fresh.parameters()[0].dataSync(), before, `${what}: the model is unchanged`);
    t.is(fopt.stepCount, 0, `${what}: the optimizer is unchanged`);
    t.deepEqual(kiln.getRngState(), rng, `${what}: the RNG is unchanged`);
  }
  // An optimizer can load its own live state; per-group options are checked like the top level ones.
  opt.loadStateDict(opt.stateDict());
  t.notThrows(() => trainSteps(m, opt, 1));
  const ps = m.parameters();
  t.throws(() => new kiln.optim.SGD([{ params: ps.slice(0, 2), momentum: -5 }, { params: ps.slice(2) }], { lr: 0.1 }), { message: /momentum must be finite and >= 0/ });
  t.throws(() => new kiln.optim.Adam([{ params: ps, eps: -1 }]), { message: /eps must be finite/ });
  t.throws(() => new kiln.optim.SGD(ps, undefined as never), { instanceOf: kiln.KilnError });
  t.throws(() => kiln.setRngState(null as never), { instanceOf: kiln.KilnError });
  for (const x of Object.values(file.tensors)) x.dispose();
});

test('writes are atomic: no temporary files left, an existing file is replaced whole', (t) => {
  const d = mkdtempSync(join(tmpdir(), 'kiln-atomic-'));
  const p = join(d, 'x.safetensors');
  saveSafetensors(p, { a: kiln.ones([1000]) });
  saveSafetensors(p, { b: kiln.zeros([3]) });
  t.deepEqual(readdirSync(d), ['x.safetensors']);
  t.deepEqual(Object.keys(loadSafetensors(p).tensors), ['b']);
  t.throws(() => saveSafetensors(join(d, 'missing-dir', 'y.safetensors'), { a: kiln.ones([1]) }));
  t.deepEqual(readdirSync(d), ['x.safetensors']);
  t.false(existsSync(join(d, 'missing-dir')));
});

test('loadStateDict is strict, names the problem, and never half-loads', (t) => {
  kiln.manualSeed(4);
  const m = new kiln.nn.GPT(cfg);
  const before = m.parameters().map((p) => p.dataSync().slice());
  const other = new kiln.nn.GPT(cfg);
  const sd = { ...other.stateDict() };
  const check = (state: Record<string, kiln.Tensor>, code: kiln.KilnErrorCode, pattern: RegExp, opts?: { strict?: boolean }) => {
    const e = t.throws(() => m.loadStateDict(state, opts)) as kiln.KilnError;
    t.is(e.code, code, e.message);
    t.regex(e.message, pattern);
    m.parameters().forEach((p, i) => t.deepEqual(p.dataSync(), before[i]));
  };
  const missing = { ...sd };
  delete missing['h.1.mlp.cFc.bias'];
  check(missing, 'INVALID_ARGUMENT', /missing keys: h\.1\.mlp\.cFc\.bias/);
  check({ ...sd, 'extra.weight': kiln.zeros([1]) }, 'INVALID_ARGUMENT', /unexpected keys: extra\.weight/);
  check({ ...sd, 'lnF.weight': kiln.zeros([17]) }, 'SHAPE_MISMATCH', /lnF\.weight: shape \[17\] in the state dict, \[16\] in the model/);
  check({ ...sd, 'lnF.bias': kiln.zeros([16], { dtype: 'float64' }) }, 'DTYPE_MISMATCH', /lnF\.bias: dtype float64/);
  // A shape error with strict off still refuses (and still changes nothing).
  check({ 'wpe.weight': kiln.zeros([3, 16]) }, 'SHAPE_MISMATCH', /wpe\.weight/, { strict: false });
  const r = m.loadStateDict({ 'lnF.bias': kiln.ones([16]) }, { strict: false });
  t.is(r.missing.length, m.namedParameters().length - 1);
  t.deepEqual(m.lnF.bias!.toArray(), new Array(16).fill(1));
  m.loadStateDict(sd);
  m.parameters().forEach((p, i) => t.deepEqual(p.dataSync(), other.parameters()[i].dataSync()));
});

test('checkpoint refuses a model of another shape before changing anything', (t) => {
  kiln.manualSeed(5);
  const path = join(dir, 'small.safetensors');
  const small = new kiln.nn.GPT(cfg);
  const smallOpt = new kiln.optim.AdamW(small.parameters());
  saveCheckpoint(path, { model: small, optimizer: smallOpt });
  const big = new kiln.nn.GPT({ ...cfg, nEmbd: 32 });
  const before = big.parameters()[0].dataSync().slice();
  const e = t.throws(() => loadCheckpoint(path, { model: big })) as kiln.KilnError;
  t.is(e.code, 'SHAPE_MISMATCH');
  t.deepEqual(big.parameters()[0].dataSync(), before);
  const e2 = t.throws(() => loadCheckpoint(path, { model: small, optimizer: new kiln.optim.SGD(small.parameters(), { lr: 1 }) })) as kiln.KilnError;
  t.regex(e2.message, /AdamW, not SGD/);
});

test('a refused checkpoint or safetensors file frees every tensor it read', (t) => {
  kiln.manualSeed(6);
  const path = join(dir, 'refused.safetensors');
  const small = new kiln.nn.GPT(cfg);
  saveCheckpoint(path, { model: small, optimizer: new kiln.optim.AdamW(small.parameters()) });
  const big = new kiln.nn.GPT({ ...cfg, nEmbd: 32 });
  const sgd = new kiln.optim.SGD(small.parameters(), { lr: 1 });
  const m0 = kiln.memory();
  for (const [what, load, code] of [
    ['a model of another shape', () => loadCheckpoint(path, { model: big }), 'SHAPE_MISMATCH'],
    ['another optimizer', () => loadCheckpoint(path, { model: small, optimizer: sgd }), 'INVALID_ARGUMENT'],
  ] as const) {
    const e = t.throws(load, { instanceOf: kiln.KilnError }, what) as kiln.KilnError;
    t.is(e.code, code, what);
    const m1 = kiln.memory();
    t.deepEqual([m1.tensors, m1.bytes], [m0.tensors, m0.bytes], what);
  }
  // An empty tensor whose other dimension kiln refuses (past 2^46), after a tensor that was read.
  const h = Buffer.from(JSON.stringify({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [0, 2 ** 50], data_offsets: [8, 8] } }));
  const b = Buffer.alloc(8 + h.length + 8);
  b.writeBigUInt64LE(BigInt(h.length), 0);
  h.copy(b, 8);
  const e = t.throws(() => decodeSafetensors(b, 'odd.safetensors'), { instanceOf: kiln.KilnError }) as kiln.KilnError;
  t.is(e.code, 'CHECKPOINT_CORRUPT');
  t.regex(e.message, /^odd\.safetensors: tensor 'b' \(float32 \[0, 1125899906842624\]\)/);
  const m2 = kiln.memory();
  t.deepEqual([m2.tensors, m2.bytes], [m0.tensors, m0.bytes]);
});

test('an EMA rides along in the checkpoint: its averages and update count come back; missing or misshapen ones are refused first', (t) => {
  kiln.manualSeed(5);
  const a = new kiln.nn.GPT(cfg);
  const optA = new kiln.optim.AdamW(a.parameters(), { lr: 1e-2 });
  const emaA = new kiln.optim.EMA(a, 0.9);
  for (let i = 0; i < 3; i++) {
    trainSteps(a, optA, 1);
    emaA.update();
  }
  const path = join(dir, 'ema.safetensors');
  saveCheckpoint(path, { model: a, optimizer: optA, ema: emaA });
  const names = Object.keys(loadSafetensors(path).tensors);
  for (const n of emaA.shadow.keys()) t.true(names.includes(`ema.${n}`), `ema.${n} stored`);

  kiln.manualSeed(6);
  const b = new kiln.nn.GPT(cfg);
  const optB = new kiln.optim.AdamW(b.parameters(), { lr: 1e-2 });
  const emaB = new kiln.optim.EMA(b, 0.9);
  const loaded = loadCheckpoint(path, { model: b, optimizer: optB, ema: emaB });
  for (const x of Object.values(loaded.tensors)) x.dispose();
  t.is(emaB.updates, 3);
  for (const [n, s] of emaA.shadow) t.deepEqual(Array.from(emaB.shadow.get(n)!.dataSync()), Array.from(s.dataSync()), n);
  // The model itself is the trained one, not the averages.
  const pa = a.stateDict(), pb = b.stateDict();
  for (const k of Object.keys(pa)) t.deepEqual(Array.from(pb[k].dataSync()), Array.from(pa[k].dataSync()), k);
  // A model loaded alone (no ema option) from the same file: the ema.* tensors are not the model's.
  const c = new kiln.nn.GPT(cfg);
  const lc = loadCheckpoint(path, { model: c });
  for (const x of Object.values(lc.tensors)) x.dispose();

  // Refusals, before the model changes: no EMA in the file; an EMA of another model's shape.
  const plain = join(dir, 'no-ema.safetensors');
  saveCheckpoint(plain, { model: a });
  const d = new kiln.nn.GPT(cfg);
  const before = Array.from(d.parameters()[0].dataSync());
  const e1 = t.throws(() => loadCheckpoint(plain, { model: d, ema: new kiln.optim.EMA(d) }), { instanceOf: kiln.KilnError });
  t.regex(e1!.message, /no EMA state/);
  const wide = new kiln.nn.GPT({ ...cfg, nEmbd: 32 });
  const e2 = t.throws(() => loadCheckpoint(path, { model: d, ema: new kiln.optim.EMA(wide) }), { instanceOf: kiln.KilnError });
  t.is(e2!.code, 'SHAPE_MISMATCH');
  t.deepEqual(Array.from(d.parameters()[0].dataSync()), before, 'the model is untouched by a refused load');
});

test('a header that is not UTF-8 is refused with CHECKPOINT_CORRUPT, not read with U+FFFD', (t) => {
  const entry = '":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}';
  const head = Buffer.concat([Buffer.from('{"w'), Buffer.from([0xff]), Buffer.from(entry), Buffer.from('    ')]);
  const bytes = Buffer.alloc(8 + head.length + 4);
  bytes.writeBigUInt64LE(BigInt(head.length), 0);
  head.copy(bytes, 8);
  const e = t.throws(() => decodeSafetensors(bytes)) as any;
  t.is(e.code, 'CHECKPOINT_CORRUPT', e.message);
  const ok = Buffer.from(bytes);
  ok[11] = 0x78;  // 'x': the same file with a valid name reads
  t.deepEqual(Object.keys(decodeSafetensors(ok).tensors), ['wx']);
});
