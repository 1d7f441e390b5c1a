// Plain reference implementations over flat Float64Array + shape: the "twins" the op tests compare
// kiln against. Written for obviousness, not speed: every loop walks logical indices.
export interface Ref {
  data: Float64Array;
  shape: number[];
}

export const numel = (shape: readonly number[]) => shape.reduce((p, d) => p * d, 1);

export function stridesOf(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i];
  }
  return s;
}

export function ref(data: ArrayLike<number>, shape: number[]): Ref {
  if (data.length !== numel(shape)) throw new Error(`ref: ${data.length} values for shape [${shape}]`);
  return { data: Float64Array.from(data), shape: shape.slice() };
}

export const scalar = (v: number): Ref => ({ data: Float64Array.of(v), shape: [] });

/** Multi-index of flat position i in a row-major shape. */
export function unravel(i: number, shape: readonly number[]): number[] {
  const idx = new Array<number>(shape.length);
  for (let d = shape.length - 1; d >= 0; d--) {
    idx[d] = i % shape[d];
    i = Math.floor(i / shape[d]);
  }
  return idx;
}

export function ravel(idx: readonly number[], shape: readonly number[]): number {
  let off = 0;
  for (let d = 0; d < shape.length; d++) off = off * shape[d] + idx[d];
  return off;
}

export function broadcastShape(...shapes: number[][]): number[] {
  const n = Math.max(0, ...shapes.map((s) => s.length));
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    let d = 1;
    for (const s of shapes) {
      const v = i < n - s.length ? 1 : s[i - (n - s.length)];
      if (v !== 1 && d !== 1 && v !== d) throw new Error(`shapes do not broadcast: ${JSON.stringify(shapes)}`);
      if (v !== 1) d = v;
    }
    out.push(d);
  }
  return out;
}

/** Value of `a` at a multi-index of a (broadcast) output shape. */
function atBroadcast(a: Ref, idx: readonly number[]): number {
  const off = idx.length - a.shape.length;
  let p = 0;
  for (let d = 0; d < a.shape.length; d++) p = p * a.shape[d] + (a.shape[d] === 1 ? 0 : idx[d + off]);
  return a.data[p];
}

/** Elementwise over any number of broadcast operands. */
export function zipN(xs: Ref[], f: (...v: number[]) => number): Ref {
  const shape = broadcastShape(...xs.map((x) => x.shape));
  const out = new Float64Array(numel(shape));
  for (let i = 0; i < out.length; i++) {
    const idx = unravel(i, shape);
    out[i] = f(...xs.map((x) => atBroadcast(x, idx)));
  }
  return { data: out, shape };
}

export const map = (a: Ref, f: (v: number) => number): Ref => ({ data: a.data.map(f), shape: a.shape.slice() });
export const zip = (a: Ref, b: Ref, f: (x: number, y: number) => number) => zipN([a, b], f);

export const add = (a: Ref, b: Ref) => zip(a, b, (x, y) => x + y);
export const sub = (a: Ref, b: Ref) => zip(a, b, (x, y) => x - y);
export const mul = (a: Ref, b: Ref) => zip(a, b, (x, y) => x * y);
export const div = (a: Ref, b: Ref) => zip(a, b, (x, y) => x / y);
export const pow = (a: Ref, b: Ref) => zip(a, b, (x, y) => Math.pow(x, y));
export const where = (c: Ref, a: Ref, b: Ref) => zipN([c, a, b], (cv, x, y) => (cv !== 0 ? x : y));

/** erf to ~1e-15: Taylor series near 0, continued fraction for erfc in the tails. */
export function erf(x: number): number {
  const ax = Math.abs(x);
  if (ax < 2.5) {
    let term = x, sum = x;
    for (let n = 1; n < 200; n++) {
      term *= (-x * x) / n;
      const t = term / (2 * n + 1);
      sum += t;
      if (Math.abs(t) < 1e-17 * Math.abs(sum)) break;
    }
    return (2 / Math.sqrt(Math.PI)) * sum;
  }
  // erfc(x) = exp(-x^2)/sqrt(pi) * 1/(x + 1/2/(x + 1/(x + 3/2/(x + ...)))) (Lentz, evaluated backwards)
  let f = ax;
  for (let k = 60; k >= 1; k--) f = ax + k / 2 / f;
  const erfc = Math.exp(-ax * ax) / Math.sqrt(Math.PI) / f;
  return Math.sign(x) * (1 - erfc);
}

export const sigmoid = (v: number) => 1 / (1 + Math.exp(-v));
export const geluExact = (v: number) => 0.5 * v * (1 + erf(v / Math.SQRT2));
export const geluTanh = (v: number) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v * v * v)));

// ---------------------------------------------------------------- reductions

export type ReduceKind = 'sum' | 'mean' | 'max' | 'min' | 'logsumexp';

export function normAxes(axes: number | number[] | undefined, ndim: number): number[] {
  if (axes === undefined) return [...Array(ndim).keys()];
  const list = typeof axes === 'number' ? [axes] : axes;
  return [...new Set(list.map((a) => (a < 0 ? a + ndim : a)))].sort((p, q) => p - q);
}

export function reduce(a: Ref, kind: ReduceKind, axes?: number | number[], keepdims = false): Ref {
  const ax = normAxes(axes, a.shape.length);
  const keepShape = a.shape.map((d, i) => (ax.includes(i) ? 1 : d));
  const groups: number[][] = Array.from({ length: numel(keepShape) }, () => []);
  for (let i = 0; i < a.data.length; i++) {
    const idx = unravel(i, a.shape).map((v, d) => (ax.includes(d) ? 0 : v));
    groups[ravel(idx, keepShape)].push(a.data[i]);
  }
  const out = Float64Array.from(groups, (g) => {
    if (kind === 'sum') return g.reduce((p, q) => p + q, 0);
    if (kind === 'mean') return g.reduce((p, q) => p + q, 0) / g.length;
    if (kind === 'max') return Math.max(...g);
    if (kind === 'min') return Math.min(...g);
    const m = Math.max(...g);
    return m + Math.log(g.reduce((p, q) => p + Math.exp(q - m), 0));
  });
  return { data: out, shape: keepdims ? keepShape : a.shape.filter((_, i) => !ax.includes(i)) };
}

/** Index of the first maximum along axis. */
export function argmax(a: Ref, axis: number): Ref {
  const ax = axis < 0 ? axis + a.shape.length : axis;
  const outShape = a.shape.filter((_, i) => i !== ax);
  const out = new Float64Array(numel(outShape));
  for (let o = 0; o < out.length; o++) {
    const base = unravel(o, outShape);
    let best = -Infinity, bi = 0;
    for (let j = 0; j < a.shape[ax]; j++) {
      const idx = [...base.slice(0, ax), j, ...base.slice(ax)];
      const v = a.data[ravel(idx, a.shape)];
      if (v > best) {
        best = v;
        bi = j;
      }
    }
    out[o] = bi;
  }
  return { data: out, shape: outShape };
}

// ---------------------------------------------------------------- views and layout

export function permute(a: Ref, dims: number[]): Ref {
  const shape = dims.map((d) => a.shape[d]);
  const out = new Float64Array(a.data.length);
  for (let i = 0; i < out.length; i++) {
    const idx = unravel(i, shape);
    const src = new Array<number>(dims.length);
    dims.forEach((d, k) => (src[d] = idx[k]));
    out[i] = a.data[ravel(src, a.shape)];
  }
  return { data: out, shape };
}

export function transpose(a: Ref, d0 = -2, d1 = -1): Ref {
  const n = a.shape.length;
  const dims = [...Array(n).keys()];
  const p = d0 < 0 ? d0 + n : d0, q = d1 < 0 ? d1 + n : d1;
  [dims[p], dims[q]] = [dims[q], dims[p]];
  return permute(a, dims);
}

export function narrow(a: Ref, axis: number, start: number, length: number): Ref {
  const shape = a.shape.slice();
  shape[axis] = length;
  const out = new Float64Array(numel(shape));
  for (let i = 0; i < out.length; i++) {
    const idx = unravel(i, shape);
    idx[axis] += start;
    out[i] = a.data[ravel(idx, a.shape)];
  }
  return { data: out, shape };
}

export const reshape = (a: Ref, shape: number[]): Ref => ({ data: a.data.slice(), shape: shape.slice() });

export function concat(xs: Ref[], axis: number): Ref {
  const shape = xs[0].shape.slice();
  shape[axis] = xs.reduce((p, x) => p + x.shape[axis], 0);
  const out = new Float64Array(numel(shape));
  for (let i = 0; i < out.length; i++) {
    const idx = unravel(i, shape);
    let k = 0, j = idx[axis];
    while (j >= xs[k].shape[axis]) j -= xs[k++].shape[axis];
    idx[axis] = j;
    out[i] = xs[k].data[ravel(idx, xs[k].shape)];
  }
  return { data: out, shape };
}

export function stack(xs: Ref[], axis: number): Ref {
  return concat(xs.map((x) => ({ data: x.data, shape: [...x.shape.slice(0, axis), 1, ...x.shape.slice(axis)] })), axis);
}

// ---------------------------------------------------------------- linear algebra

/** torch.matmul semantics: vectors promoted and squeezed, batch dims broadcast. */
export function matmul(a: Ref, b: Ref): Ref {
  const av = a.shape.length === 1, bv = b.shape.length === 1;
  const A2 = av ? { data: a.data, shape: [1, a.shape[0]] } : a;
  const B2 = bv ? { data: b.data, shape: [b.shape[0], 1] } : b;
  const M = A2.shape[A2.shape.length - 2], K = A2.shape[A2.shape.length - 1], N = B2.shape[B2.shape.length - 1];
  if (B2.shape[B2.shape.length - 2] !== K) throw new Error('matmul: inner dims differ');
  const batch = broadcastShape(A2.shape.slice(0, -2), B2.shape.slice(0, -2));
  const outShape = [...batch, M, N];
  const out = new Float64Array(numel(outShape));
  const aFull = [...batch, M, K], bFull = [...batch, K, N];
  for (let o = 0; o < out.length; o++) {
    const idx = unravel(o, outShape);
    const bi = idx.slice(0, -2), i = idx[idx.length - 2], j = idx[idx.length - 1];
    let s = 0;
    for (let k = 0; k < K; k++) s += atBroadcast(A2, [...bi, i, k]) * atBroadcast(B2, [...bi, k, j]);
    out[o] = s;
    void aFull, bFull;
  }
  let shape = outShape;
  if (av) shape = [...shape.slice(0, -2), shape[shape.length - 1]];
  if (bv) shape = shape.slice(0, -1);
  return { data: out, shape };
}

// ---------------------------------------------------------------- neural-network ops

/** Applies f to every 1-D fibre along `axis`. */
export function alongAxis(a: Ref, axis: number, f: (row: number[]) => number[]): Ref {
  const ax = axis < 0 ? axis + a.shape.length : axis;
  const n = a.shape[ax];
  const outerShape = a.shape.filter((_, i) => i !== ax);
  const out = new Float64Array(a.data.length);
  for (let o = 0; o < numel(outerShape); o++) {
    const base = unravel(o, outerShape);
    const pos = (j: number) => ravel([...base.slice(0, ax), j, ...base.slice(ax)], a.shape);
    const row = Array.from({ length: n }, (_, j) => a.data[pos(j)]);
    f(row).forEach((v, j) => (out[pos(j)] = v));
  }
  return { data: out, shape: a.shape.slice() };
}

export function softmaxRow(row: number[]): number[] {
  const m = Math.max(...row);
  const e = row.map((v) => Math.exp(v - m));
  const s = e.reduce((p, q) => p + q, 0);
  return e.map((v) => v / s);
}
export function logSoftmaxRow(row: number[]): number[] {
  const m = Math.max(...row);
  const lse = m + Math.log(row.reduce((p, v) => p + Math.exp(v - m), 0));
  return row.map((v) => v - lse);
}
export const softmax = (a: Ref, axis = -1) => alongAxis(a, axis, softmaxRow);
export const logSoftmax = (a: Ref, axis = -1) => alongAxis(a, axis, logSoftmaxRow);

/** Layer norm over the last `nDims` dims (biased variance, like PyTorch). */
export function layerNorm(x: Ref, nDims: number, w?: Ref, b?: Ref, eps = 1e-5): Ref {
  const n = numel(x.shape.slice(x.shape.length - nDims));
  const out = new Float64Array(x.data.length);
  for (let r = 0; r < x.data.length / n; r++) {
    const row = x.data.subarray(r * n, r * n + n);
    const mu = row.reduce((p, q) => p + q, 0) / n;
    const v = row.reduce((p, q) => p + (q - mu) * (q - mu), 0) / n;
    const rstd = 1 / Math.sqrt(v + eps);
    for (let j = 0; j < n; j++) out[r * n + j] = (row[j] - mu) * rstd * (w ? w.data[j] : 1) + (b ? b.data[j] : 0);
  }
  return { data: out, shape: x.shape.slice() };
}

export interface CEOptions {
  ignoreIndex?: number;
  reduction?: 'mean' | 'sum' | 'none';
  labelSmoothing?: number;
}

/** PyTorch's cross_entropy with class-index targets: ignored rows count 0 and leave the mean. */
export function crossEntropy(logits: Ref, targets: Ref, o: CEOptions = {}): Ref {
  const ignore = o.ignoreIndex ?? -100, ls = o.labelSmoothing ?? 0, red = o.reduction ?? 'mean';
  const C = logits.shape[logits.shape.length - 1];
  const rows = targets.data.length;
  const losses = new Float64Array(rows);
  let count = 0;
  for (let r = 0; r < rows; r++) {
    const t = targets.data[r];
    if (t === ignore) continue;
    count++;
    const lp = logSoftmaxRow(Array.from(logits.data.subarray(r * C, r * C + C)));
    const nll = -lp[t];
    const smooth = -lp.reduce((p, q) => p + q, 0) / C;
    losses[r] = (1 - ls) * nll + ls * smooth;
  }
  if (red === 'none') return { data: losses, shape: targets.shape.slice() };
  const s = losses.reduce((p, q) => p + q, 0);
  return scalar(red === 'sum' ? s : s / count);
}

export function embedding(w: Ref, idx: Ref): Ref {
  const D = w.shape[1];
  const out = new Float64Array(idx.data.length * D);
  idx.data.forEach((v, i) => out.set(w.data.subarray(v * D, v * D + D), i * D));
  return { data: out, shape: [...idx.shape, D] };
}

export function cumsum(a: Ref, axis: number, reverse = false): Ref {
  return alongAxis(a, axis, (row) => {
    const out = new Array<number>(row.length);
    let s = 0;
    if (reverse) for (let j = row.length - 1; j >= 0; j--) out[j] = s += row[j];
    else for (let j = 0; j < row.length; j++) out[j] = s += row[j];
    return out;
  });
}

/** Values and indices of the k largest (or smallest) along the last axis, sorted. */
export function topk(a: Ref, k: number, largest = true): { values: Ref; indices: Ref } {
  const n = a.shape[a.shape.length - 1];
  const rows = a.data.length / n;
  const shape = [...a.shape.slice(0, -1), k];
  const values = new Float64Array(rows * k), indices = new Float64Array(rows * k);
  for (let r = 0; r < rows; r++) {
    const order = [...Array(n).keys()].sort((p, q) => {
      const d = largest ? a.data[r * n + q] - a.data[r * n + p] : a.data[r * n + p] - a.data[r * n + q];
      return d !== 0 ? d : p - q;
    });
    for (let j = 0; j < k; j++) {
      indices[r * k + j] = order[j];
      values[r * k + j] = a.data[r * n + order[j]];
    }
  }
  return { values: { data: values, shape }, indices: { data: indices, shape } };
}

export function oneHot(idx: Ref, C: number): Ref {
  const out = new Float64Array(idx.data.length * C);
  idx.data.forEach((v, i) => (out[i * C + v] = 1));
  return { data: out, shape: [...idx.shape, C] };
}

export function mse(a: Ref, b: Ref, reduction: 'mean' | 'sum' | 'none' = 'mean'): Ref {
  const d = zip(a, b, (x, y) => (x - y) * (x - y));
  if (reduction === 'none') return d;
  return reduce(d, reduction === 'mean' ? 'mean' : 'sum');
}
