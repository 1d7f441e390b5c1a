// The paper's baselines, each a learner that sees the k in-context examples of one prompt and
// predicts the query: min-norm least squares, averaging, k-nearest neighbours, Lasso (coordinate
// descent on sklearn's objective), greedy CART trees and gradient boosting (in plain float64
// TypeScript, per prompt), and the 2-layer ReLU net trained by Adam on the prompt (in kiln, all
// prompts of a batch trained at once as parallel networks, as the paper's ParallelNetworks).

/** Row-major context: xs [k, d], ys [k]; the query q [d]. */
export interface Context {
  xs: Float64Array;
  ys: Float64Array;
  k: number;
  d: number;
}

export interface Baseline {
  name: string;
  predict(ctx: Context, q: Float64Array): number;
}

const dot = (a: ArrayLike<number>, ao: number, b: ArrayLike<number>, bo: number, d: number) => {
  let s = 0;
  for (let i = 0; i < d; i++) s += a[ao + i] * b[bo + i];
  return s;
};

/** Eigen-decomposition of a symmetric n×n matrix by cyclic Jacobi: A = V diag(w) Vᵀ (V column-major in rows). */
export function symmetricEigen(a: Float64Array, n: number): { w: Float64Array; v: Float64Array } {
  const m = Float64Array.from(a), v = new Float64Array(n * n);
  for (let i = 0; i < n; i++) v[i * n + i] = 1;
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0, diag = 0;
    for (let i = 0; i < n; i++) {
      diag += m[i * n + i] ** 2;
      for (let j = i + 1; j < n; j++) off += m[i * n + j] ** 2;
    }
    if (off <= 1e-30 * diag || off === 0) break;
    for (let p = 0; p < n; p++)
      for (let q = p + 1; q < n; q++) {
        const apq = m[p * n + q];
        if (apq === 0) continue;
        const theta = (m[q * n + q] - m[p * n + p]) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1), s = t * c;
        for (let k = 0; k < n; k++) {
          const mkp = m[k * n + p], mkq = m[k * n + q];
          m[k * n + p] = c * mkp - s * mkq;
          m[k * n + q] = s * mkp + c * mkq;
        }
        for (let k = 0; k < n; k++) {
          const mpk = m[p * n + k], mqk = m[q * n + k];
          m[p * n + k] = c * mpk - s * mqk;
          m[q * n + k] = s * mpk + c * mqk;
        }
        for (let k = 0; k < n; k++) {
          const vkp = v[k * n + p], vkq = v[k * n + q];
          v[k * n + p] = c * vkp - s * vkq;
          v[k * n + q] = s * vkp + c * vkq;
        }
      }
  }
  const w = new Float64Array(n);
  for (let i = 0; i < n; i++) w[i] = m[i * n + i];
  return { w, v };
}

/** pinv(A) b for a symmetric positive semi-definite A (eigenvalues below rcond·max dropped). */
function psdSolve(a: Float64Array, b: Float64Array, n: number, rcond = 1e-10): Float64Array {
  const { w, v } = symmetricEigen(a, n);
  let wmax = 0;
  for (const x of w) wmax = Math.max(wmax, Math.abs(x));
  const out = new Float64Array(n);
  for (let e = 0; e < n; e++) {
    if (w[e] <= rcond * wmax) continue;
    let proj = 0;
    for (let i = 0; i < n; i++) proj += v[i * n + e] * b[i];
    proj /= w[e];
    for (let i = 0; i < n; i++) out[i] += v[i * n + e] * proj;
  }
  return out;
}

/** The minimum-norm least-squares solution w = pinv(X) y (what torch.linalg.lstsq/pinv give). */
export function minNormLeastSquares(ctx: Context): Float64Array {
  const { xs, ys, k, d } = ctx;
  if (k === 0) return new Float64Array(d);
  if (k >= d) {
    const g = new Float64Array(d * d), c = new Float64Array(d);
    for (let r = 0; r < k; r++)
      for (let i = 0; i < d; i++) {
        const xi = xs[r * d + i];
        c[i] += xi * ys[r];
        for (let j = 0; j < d; j++) g[i * d + j] += xi * xs[r * d + j];
      }
    return psdSolve(g, c, d);
  }
  // Underdetermined: w = Xᵀ pinv(X Xᵀ) y, the interpolant of least norm.
  const kk = new Float64Array(k * k);
  for (let i = 0; i < k; i++) for (let j = 0; j < k; j++) kk[i * k + j] = dot(xs, i * d, xs, j * d, d);
  const alpha = psdSolve(kk, ys.subarray(0, k), k);
  const w = new Float64Array(d);
  for (let r = 0; r < k; r++) for (let i = 0; i < d; i++) w[i] += alpha[r] * xs[r * d + i];
  return w;
}

export const leastSquares: Baseline = {
  name: 'least squares',
  predict: (ctx, q) => dot(minNormLeastSquares(ctx), 0, q, 0, ctx.d),
};

/** w = mean_i(x_i y_i), prediction q·w. */
export const averaging: Baseline = {
  name: 'averaging',
  predict: ({ xs, ys, k, d }, q) => {
    if (k === 0) return 0;
    let p = 0;
    for (let r = 0; r < k; r++) p += ys[r] * dot(xs, r * d, q, 0, d);
    return p / k;
  },
};

/** Mean of the targets of the `m` nearest examples (uniform weights; all of them when k < m). */
export function nearestNeighbours(m = 3): Baseline {
  return {
    name: `${m}-NN`,
    predict: ({ xs, ys, k, d }, q) => {
      if (k === 0) return 0;
      const dist = new Float64Array(k);
      for (let r = 0; r < k; r++) {
        let s = 0;
        for (let i = 0; i < d; i++) s += (xs[r * d + i] - q[i]) ** 2;
        dist[r] = s;
      }
      const idx = Array.from({ length: k }, (_, i) => i).sort((a, b) => dist[a] - dist[b] || a - b);
      const take = Math.min(m, k);
      let s = 0;
      for (let i = 0; i < take; i++) s += ys[idx[i]];
      return s / take;
    },
  };
}

/** Lasso without intercept: argmin (1/2k)‖y − Xw‖² + α‖w‖₁ by cyclic coordinate descent (sklearn's objective). */
export function lassoFit(ctx: Context, alpha: number, maxIter = 10000, tol = 1e-7): Float64Array {
  const { xs, ys, k, d } = ctx;
  const w = new Float64Array(d);
  if (k === 0) return w;
  const g = new Float64Array(d * d), c = new Float64Array(d);
  for (let r = 0; r < k; r++)
    for (let i = 0; i < d; i++) {
      c[i] += xs[r * d + i] * ys[r];
      for (let j = 0; j < d; j++) g[i * d + j] += xs[r * d + i] * xs[r * d + j];
    }
  const lam = alpha * k;
  let scale = 0;
  for (let i = 0; i < d; i++) scale = Math.max(scale, Math.abs(c[i]));
  for (let it = 0; it < maxIter; it++) {
    let maxDelta = 0, maxW = 0;
    for (let j = 0; j < d; j++) {
      const gjj = g[j * d + j];
      if (gjj <= 0) continue;
      let rho = c[j];
      for (let l = 0; l < d; l++) if (l !== j) rho -= g[j * d + l] * w[l];
      const nw = Math.sign(rho) * Math.max(Math.abs(rho) - lam, 0) / gjj;
      maxDelta = Math.max(maxDelta, Math.abs(nw - w[j]));
      w[j] = nw;
      maxW = Math.max(maxW, Math.abs(nw));
    }
    if (maxDelta <= tol * Math.max(maxW, 1e-12)) break;
  }
  return w;
}

export function lasso(alpha: number): Baseline {
  return { name: `lasso (α=${alpha})`, predict: (ctx, q) => dot(lassoFit(ctx, alpha), 0, q, 0, ctx.d) };
}

// ---- greedy regression trees (CART, squared error) and gradient boosting ----

type TreeNode = { value: number } | { feature: number; threshold: number; left: TreeNode; right: TreeNode };

/** Greedy CART: at each node the split (feature, midpoint threshold) that most reduces squared error. */
export function fitTree(xs: Float64Array, ys: Float64Array, d: number, rows: number[], maxDepth: number, depth = 0): TreeNode {
  const n = rows.length;
  let sum = 0;
  for (const r of rows) sum += ys[r];
  const mean = n ? sum / n : 0;
  if (n < 2 || depth >= maxDepth) return { value: mean };
  let sse0 = 0;
  for (const r of rows) sse0 += (ys[r] - mean) ** 2;
  if (sse0 <= 1e-24) return { value: mean };
  let best = { gain: 1e-12 * sse0, feature: -1, threshold: 0 };
  const order = rows.slice();
  for (let f = 0; f < d; f++) {
    order.sort((a, b) => xs[a * d + f] - xs[b * d + f]);
    let ls = 0, lss = 0, totS = 0, totSS = 0;
    for (const r of order) {
      totS += ys[r];
      totSS += ys[r] * ys[r];
    }
    for (let i = 0; i < n - 1; i++) {
      const y = ys[order[i]];
      ls += y;
      lss += y * y;
      const xa = xs[order[i] * d + f], xb = xs[order[i + 1] * d + f];
      if (xa === xb) continue;
      const nl = i + 1, nr = n - nl;
      const sse = lss - (ls * ls) / nl + (totSS - lss) - ((totS - ls) ** 2) / nr;
      const gain = sse0 - sse;
      if (gain > best.gain) best = { gain, feature: f, threshold: (xa + xb) / 2 };
    }
  }
  if (best.feature < 0) return { value: mean };
  const left: number[] = [], right: number[] = [];
  for (const r of rows) (xs[r * d + best.feature] <= best.threshold ? left : right).push(r);
  return {
    feature: best.feature,
    threshold: best.threshold,
    left: fitTree(xs, ys, d, left, maxDepth, depth + 1),
    right: fitTree(xs, ys, d, right, maxDepth, depth + 1),
  };
}

export function treePredict(t: TreeNode, x: ArrayLike<number>, off = 0): number {
  while (!('value' in t)) t = x[off + t.feature] <= t.threshold ? t.left : t.right;
  return t.value;
}

export function decisionTree(maxDepth = Infinity): Baseline {
  return {
    name: Number.isFinite(maxDepth) ? `greedy tree (depth ${maxDepth})` : 'greedy tree (unlimited)',
    predict: ({ xs, ys, k, d }, q) => {
      if (k === 0) return 0;
      return treePredict(fitTree(xs, ys, d, Array.from({ length: k }, (_, i) => i), maxDepth), q);
    },
  };
}

/** Least-squares gradient boosting: F₀ = mean, then `trees` depth-limited CART fits to the residuals, shrunk by lr. */
export function gradientBoosting(trees = 50, maxDepth = 4, lr = 0.1): Baseline {
  return {
    name: `boosted trees (${trees}×depth ${maxDepth}, lr ${lr})`,
    predict: ({ xs, ys, k, d }, q) => {
      if (k === 0) return 0;
      const rows = Array.from({ length: k }, (_, i) => i);
      let f0 = 0;
      for (let r = 0; r < k; r++) f0 += ys[r];
      f0 /= k;
      const fit = new Float64Array(k).fill(f0), resid = new Float64Array(k);
      let pred = f0;
      for (let t = 0; t < trees; t++) {
        for (let r = 0; r < k; r++) resid[r] = ys[r] - fit[r];
        const tree = fitTree(xs, resid, d, rows, maxDepth);
        for (let r = 0; r < k; r++) fit[r] += lr * treePredict(tree, xs, r * d);
        pred += lr * treePredict(tree, q);
      }
      return pred;
    },
  };
}
