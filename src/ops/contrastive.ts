// Contrastive losses on the fused tiled kernels (kernels/cpu/contrastive.cc): InfoNCE / NT-Xent
// (SimCLR), the asymmetric CISSL objective, the CLIP loss with a learned logit scale, and the
// DISSL distillation terms. The similarity matrix is never stored: the forward keeps an online
// logsumexp per row and the backward recomputes the tiles.
import { KilnError, shapeStr } from '../errors.js';
import { A, N } from '../native.js';
import { isGradEnabled, record } from '../tensor/autograd.js';
import { Tensor, empty } from '../tensor/tensor.js';
import { fillInPlace } from './creation.js';
import { add } from './elementwise.js';
import { arg, checkTensor, contig, needDType, needFloat, needSavedLive, sameDevice } from './util.js';

type B = ArrayBuffer | undefined;
const NA = N as unknown as {
  nceForward(q: B, k: B, loss: B, lse: B, esim: B, tsim: B): void;
  nceBackward(q: B, k: B, lse: B, grow: B, dq: B, dk: B): void;
  disslCrossEntropy(t: B, s: B, l: B, dt: B, ds: B): void;
  meanEntropy(t: B, pbar: B, out: B): void;
};

export type Reduction = 'mean' | 'sum' | 'none';

interface NceConfig {
  scale: number;
  cosine: boolean;
  maskSelf: boolean;
  shift: number;
  wPos: number;
  wSelf: number;
}

interface NceRows {
  loss: Tensor; // [R] per-row losses
  esim: Tensor; // [R] E_p[sim]
  tsim: Tensor; // [R] target similarity
  /** dq, dk (null when shared) for per-row upstream gradients grow [R]. */
  backward(grow: Tensor): [Tensor, Tensor | null];
  dispose(): void;
}

function writeSpec(rows: number, dim: number, c: NceConfig, shared: boolean): void {
  A[0] = rows;
  A[1] = dim;
  A[2] = c.shift;
  A[3] = (c.cosine ? 1 : 0) | (c.maskSelf ? 2 : 0) | (shared ? 4 : 0);
  A[4] = c.scale;
  A[5] = c.wPos;
  A[6] = c.wSelf;
}

/** One call of the fused forward; keeps what the backward needs. */
function nceRows(op: string, q: Tensor, k: Tensor | null, c: NceConfig): NceRows {
  const [R, D] = q.shape;
  const qc = contig(q), kc = k ? contig(k) : null;
  const mk = () => empty([R], q.dtype, q.device);
  const loss = mk(), lse = mk(), esim = mk(), tsim = mk();
  writeSpec(R, D, c, !k);
  NA.nceForward(arg(8, qc), kc ? arg(11, kc) : undefined, arg(14, loss), arg(17, lse), arg(20, esim), arg(23, tsim));
  return {
    loss, esim, tsim,
    backward(grow) {
      needSavedLive(`${op} backward`, [[qc, 'queries'], [kc, 'keys']]);
      const dq = empty([R, D], q.dtype, q.device), dk = kc ? empty([R, D], q.dtype, q.device) : null;
      writeSpec(R, D, c, !k);
      NA.nceBackward(arg(8, qc), kc ? arg(11, kc) : undefined, arg(14, lse), arg(17, grow), arg(20, dq), dk ? arg(23, dk) : undefined);
      return [dq, dk];
    },
    dispose() {
      lse.dispose();
      esim.dispose();
      tsim.dispose();
      if (qc !== q) qc.dispose();
      if (kc && kc !== k) kc.dispose();
    },
  };
}

function checkPair(op: string, q: Tensor, k: Tensor | null, evenRows: boolean): void {
  checkTensor(op, q, 'queries');
  needFloat(op, q, 'queries');
  if (q.ndim !== 2 || q.shape[0] === 0 || q.shape[1] === 0)
    throw new KilnError('SHAPE_MISMATCH', `${op}: embeddings must be a non-empty [rows, dim] matrix, got ${shapeStr(q.shape)}`);
  if (evenRows && q.shape[0] % 2 !== 0)
    throw new KilnError('SHAPE_MISMATCH', `${op}: needs 2N rows (view a of sample i at row i, view b at row i + N), got ${shapeStr(q.shape)}`);
  if (!k) return;
  checkTensor(op, k, 'keys');
  sameDevice(op, q, k);
  needDType(op, k, q.dtype, 'keys');
  if (k.ndim !== 2 || k.shape[0] !== q.shape[0] || k.shape[1] !== q.shape[1])
    throw new KilnError('SHAPE_MISMATCH', `${op}: ${shapeStr(q.shape)} and ${shapeStr(k.shape)} must have the same batch and dim`);
}

function checkTemperature(op: string, t: number): void {
  // 1 / t must be finite too (a subnormal t passed here and was refused by the native layer, after
  // the outputs were allocated).
  if (!(typeof t === 'number' && Number.isFinite(t) && t > 0 && Number.isFinite(1 / t)))
    throw new KilnError('INVALID_ARGUMENT', `${op}: temperature must be a finite number > 0 with a finite 1 / temperature, got ${String(t)}`);
}

function checkReduction(op: string, r: string): void {
  if (!['mean', 'sum', 'none'].includes(r)) throw new KilnError('INVALID_ARGUMENT', `${op}: unknown reduction '${r}'`);
}

/** Reduces per-row losses; returns the output and the per-row upstream gradient for a given g. */
function reduceRows(loss: Tensor, reduction: Reduction): { out: Tensor; rowGrad(g: Tensor): Tensor } {
  const R = loss.size;
  if (reduction === 'none') return { out: loss, rowGrad: (g) => contig(g) };
  const v = loss.dataSync();
  let total = 0;
  for (let i = 0; i < v.length; i++) total += v[i];
  const out = fillInPlace(empty([], loss.dtype, loss.device), reduction === 'mean' ? total / R : total);
  loss.dispose();
  const f = reduction === 'mean' ? 1 / R : 1;
  return { out, rowGrad: (g) => fillInPlace(empty([R], loss.dtype, loss.device), g.item() * f) };
}

export interface InfoNCEOptions {
  /** Softmax temperature (> 0); logits are sim / temperature. Default 0.1. */
  temperature?: number;
  similarity?: 'cosine' | 'dot';
  /** Drop each row's own column from its softmax (SimCLR). Default true. */
  maskSelf?: boolean;
  /** Target weight on the row's own column (CISSL: 0.5); the other view gets 1 - selfWeight. Default 0. */
  selfWeight?: number;
  reduction?: Reduction;
}

/**
 * InfoNCE over 2N views: row i of `queries` ([2N, D]) is scored against every row of `keys`
 * (default: the queries themselves, as in SimCLR); its positive is row (i + N) mod 2N.
 */
export function infoNCE(queries: Tensor, keys: Tensor | null = null, opts: InfoNCEOptions = {}): Tensor {
  const op = 'infoNCE';
  opts ??= {};
  if (keys !== null && keys !== undefined && !(keys instanceof Tensor))  // 0 / false used to mean "no keys"
    throw new KilnError('INVALID_ARGUMENT', `${op}: keys must be a Tensor or null (the queries themselves), got ${typeof keys}`);
  const temperature = opts.temperature ?? 0.1, reduction = opts.reduction ?? 'mean';
  const maskSelf = opts.maskSelf ?? true, selfWeight = opts.selfWeight ?? 0, sim = opts.similarity ?? 'cosine';
  checkPair(op, queries, keys, true);
  checkTemperature(op, temperature);
  checkReduction(op, reduction);
  if (sim !== 'cosine' && sim !== 'dot') throw new KilnError('INVALID_ARGUMENT', `${op}: similarity must be 'cosine' or 'dot', got '${sim}'`);
  if (!(typeof selfWeight === 'number' && selfWeight >= 0 && selfWeight <= 1))
    throw new KilnError('INVALID_ARGUMENT', `${op}: selfWeight must be a number in [0, 1], got ${String(selfWeight)}`);
  if (maskSelf && selfWeight !== 0) throw new KilnError('INVALID_ARGUMENT', `${op}: selfWeight needs maskSelf: false (the self pair is masked)`);
  const R = queries.shape[0];
  const cfg: NceConfig = { scale: 1 / temperature, cosine: sim === 'cosine', maskSelf, shift: R / 2, wPos: 1 - selfWeight, wSelf: selfWeight };
  const rows = nceRows(op, queries, keys, cfg);
  const inputs = keys ? [queries, keys] : [queries];
  const { out, rowGrad } = reduceRows(rows.loss, reduction);
  if (!isGradEnabled() || !inputs.some((t) => t.requiresGrad)) {
    rows.dispose();
    return out;
  }
  return record(out, op, inputs, (g) => {
    const grow = rowGrad(g);
    const [dq, dk] = rows.backward(grow);
    if (grow !== g) grow.dispose();
    return keys ? [dq, dk] : [dq];
  });
}

/** NT-Xent (SimCLR): z is [2N, D] with the two views of sample i at rows i and i + N. */
export function ntXent(z: Tensor, opts: { temperature?: number; similarity?: 'cosine' | 'dot'; reduction?: Reduction } = {}): Tensor {
  return infoNCE(z, null, { ...opts, maskSelf: true, selfWeight: 0 });
}

/**
 * CISSL's asymmetric objective: student projections [2N, D] against teacher embeddings [2N, D],
 * the self pair kept, soft targets 0.5 on the own teacher row and 0.5 on the other view's.
 */
export function cisslLoss(student: Tensor, teacher: Tensor, opts: { temperature?: number; similarity?: 'cosine' | 'dot'; reduction?: Reduction } = {}): Tensor {
  return infoNCE(student, teacher, { ...opts, maskSelf: false, selfWeight: 0.5 });
}

/**
 * CLIP loss: symmetric cross-entropy of cosine logits exp(logitScale) * <img_i, txt_j> with the
 * matching pairs on the diagonal. logitScale is the learned log inverse temperature (a scalar
 * tensor; CLIP starts it at log(1 / 0.07)) and gets a gradient too.
 */
export function clipLoss(image: Tensor, text: Tensor, logitScale: Tensor): Tensor {
  const op = 'clipLoss';
  checkPair(op, image, text, false);
  checkTensor(op, logitScale, 'logitScale');
  sameDevice(op, image, logitScale);
  needDType(op, logitScale, image.dtype, 'logitScale');
  if (logitScale.size !== 1) throw new KilnError('SHAPE_MISMATCH', `${op}: logitScale must be a scalar, got ${shapeStr(logitScale.shape)}`);
  const scale = Math.exp(logitScale.item());
  if (!(Number.isFinite(scale) && scale > 0))
    throw new KilnError('INVALID_ARGUMENT', `${op}: exp(logitScale) must be finite and > 0, got ${scale}`);
  const R = image.shape[0];
  const cfg: NceConfig = { scale, cosine: true, maskSelf: false, shift: 0, wPos: 1, wSelf: 0 };
  const it = nceRows(op, image, text, cfg), ti = nceRows(op, text, image, cfg);
  const li = it.loss.dataSync(), lt = ti.loss.dataSync();
  let total = 0;
  for (let i = 0; i < R; i++) total += li[i] + lt[i];
  const out = fillInPlace(empty([], image.dtype, image.device), total / (2 * R));
  it.loss.dispose();
  ti.loss.dispose();
  const inputs = [image, text, logitScale];
  if (!isGradEnabled() || !inputs.some((t) => t.requiresGrad)) {
    it.dispose();
    ti.dispose();
    return out;
  }
  return record(out, op, inputs, (g) => {
    const gv = g.item() / (2 * R);
    const grow = fillInPlace(empty([R], image.dtype, image.device), gv);
    const [di1, dt1] = it.backward(grow);
    const [dt2, di2] = ti.backward(grow);
    grow.dispose();
    // d loss_i / d scale = E_p[sim] - sim(i, i); d scale / d logitScale = scale.
    let ds = 0;
    for (const r of [it, ti]) {
      const e = r.esim.dataSync(), t = r.tsim.dataSync();
      for (let i = 0; i < R; i++) ds += e[i] - t[i];
    }
    const dScale = fillInPlace(empty(logitScale.shape.slice(), image.dtype, image.device), gv * ds * scale);
    const dImage = addInto(di1, di2!), dText = addInto(dt1!, dt2);
    return [dImage, dText, dScale];
  });
}

// a + b through the elementwise kernel, freeing both.
function addInto(a: Tensor, b: Tensor): Tensor {
  const s = add(a, b);
  a.dispose();
  b.dispose();
  return s;
}

function checkLogits(op: string, t: Tensor, name: string): void {
  checkTensor(op, t, name);
  needFloat(op, t, name);
  if (t.ndim !== 2 || t.shape[0] === 0 || t.shape[1] === 0)
    throw new KilnError('SHAPE_MISMATCH', `${op}: ${name} must be non-empty [N, C] logits, got ${shapeStr(t.shape)}`);
}

export interface DisslOptions {
  teacherTemperature?: number;
  studentTemperature?: number;
  reduction?: Reduction;
}

/**
 * DISSL distillation term: cross-entropy H(softmax(t / tau_t), softmax(s / tau_s)) per row of
 * [N, C] teacher and student logits (gradients flow to both; detach the teacher to stop it).
 */
export function disslCrossEntropy(teacherLogits: Tensor, studentLogits: Tensor, opts: DisslOptions = {}): Tensor {
  const op = 'disslCrossEntropy';
  opts ??= {};
  const tt = opts.teacherTemperature ?? 1, ts = opts.studentTemperature ?? 1, reduction = opts.reduction ?? 'mean';
  checkLogits(op, teacherLogits, 'teacher');
  checkLogits(op, studentLogits, 'student');
  sameDevice(op, teacherLogits, studentLogits);
  needDType(op, studentLogits, teacherLogits.dtype, 'student');
  if (teacherLogits.shape[0] !== studentLogits.shape[0] || teacherLogits.shape[1] !== studentLogits.shape[1])
    throw new KilnError('SHAPE_MISMATCH', `${op}: teacher ${shapeStr(teacherLogits.shape)} and student ${shapeStr(studentLogits.shape)} differ`);
  checkTemperature(op, tt);
  checkTemperature(op, ts);
  checkReduction(op, reduction);
  const [n, C] = teacherLogits.shape;
  const t = contig(teacherLogits), s = contig(studentLogits);
  const loss = empty([n], t.dtype, t.device);
  const spec = (kind: number, flags: number) => {
    A[0] = n;
    A[1] = C;
    A[2] = tt;
    A[3] = ts;
    A[4] = kind;
    A[5] = flags;
  };
  spec(0, 0);
  NA.disslCrossEntropy(arg(8, t), arg(11, s), arg(14, loss), undefined, undefined);
  const { out, rowGrad } = reduceRows(loss, reduction);
  const inputs = [teacherLogits, studentLogits];
  if (!isGradEnabled() || !inputs.some((x) => x.requiresGrad)) {
    if (t !== teacherLogits) t.dispose();
    if (s !== studentLogits) s.dispose();
    return out;
  }
  return record(out, op, inputs, (g) => {
    const grow = rowGrad(g);
    const dt = teacherLogits.requiresGrad ? empty([n, C], t.dtype, t.device) : null;
    const ds = studentLogits.requiresGrad ? empty([n, C], t.dtype, t.device) : null;
    spec(1, (dt ? 1 : 0) | (ds ? 2 : 0));
    NA.disslCrossEntropy(arg(8, t), arg(11, s), arg(14, grow), dt ? arg(17, dt) : undefined, ds ? arg(20, ds) : undefined);
    if (grow !== g) grow.dispose();
    return [dt, ds];
  });
}

/** Entropy of the batch-mean distribution mean_i softmax(logits_i / temperature) over [N, C] logits. */
export function meanEntropy(logits: Tensor, opts: { temperature?: number } = {}): Tensor {
  const op = 'meanEntropy';
  opts ??= {};
  const tau = opts.temperature ?? 1;
  checkLogits(op, logits, 'logits');
  checkTemperature(op, tau);
  const [n, C] = logits.shape;
  if (n === 0) throw new KilnError('SHAPE_MISMATCH', `${op}: needs at least one row`);
  const t = contig(logits);
  const pbar = empty([C], t.dtype, t.device), h = empty([], t.dtype, t.device);
  A[0] = n;
  A[1] = C;
  A[2] = tau;
  A[3] = 0;
  NA.meanEntropy(arg(8, t), arg(11, pbar), arg(14, h));
  if (!isGradEnabled() || !logits.requiresGrad) {
    pbar.dispose();
    if (t !== logits) t.dispose();
    return h;
  }
  return record(h, op, [logits], (g) => {
    // g.item() first: on CUDA it reads the value back through a native call that reuses A.
    const gv = g.item();
    const dt = empty([n, C], t.dtype, t.device);
    A[0] = n;
    A[1] = C;
    A[2] = tau;
    A[3] = 1;
    A[4] = gv;
    NA.meanEntropy(arg(8, t), arg(11, pbar), arg(14, dt));
    return [dt];
  });
}
