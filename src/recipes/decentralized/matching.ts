// The combinatorial pieces of the pipeline cost: an assignment solver (Hungarian method), the
// bottleneck perfect matching between two groups by repeated assignment solves, and the open-loop
// travelling-salesman path over the groups by exact Held–Karp dynamic programming.

export interface Assignment {
  /** match[row] = column. */
  match: Int32Array;
  cost: number;
}

/**
 * Minimum-cost perfect assignment on an n × n cost matrix (row-major), O(n³) Hungarian method with
 * row/column potentials and shortest augmenting paths.
 */
export function solveAssignment(cost: ArrayLike<number>, n: number): Assignment {
  const INF = Number.POSITIVE_INFINITY;
  const u = new Float64Array(n + 1);
  const v = new Float64Array(n + 1);
  const p = new Int32Array(n + 1); // p[col] = row matched to col (1-based; 0 = none)
  const way = new Int32Array(n + 1);
  const minv = new Float64Array(n + 1);
  const used = new Uint8Array(n + 1);
  for (let i = 1; i <= n; i++) {
    p[0] = i;
    let j0 = 0;
    minv.fill(INF);
    used.fill(0);
    do {
      used[j0] = 1;
      const i0 = p[j0];
      let delta = INF;
      let j1 = 0;
      for (let j = 1; j <= n; j++) {
        if (used[j]) continue;
        const cur = cost[(i0 - 1) * n + (j - 1)] - u[i0] - v[j];
        if (cur < minv[j]) { minv[j] = cur; way[j] = j0; }
        if (minv[j] < delta) { delta = minv[j]; j1 = j; }
      }
      for (let j = 0; j <= n; j++) {
        if (used[j]) { u[p[j]] += delta; v[j] -= delta; } else minv[j] -= delta;
      }
      j0 = j1;
    } while (p[j0] !== 0);
    do {
      const j1 = way[j0];
      p[j0] = p[j1];
      j0 = j1;
    } while (j0 !== 0);
  }
  const match = new Int32Array(n);
  let total = 0;
  for (let j = 1; j <= n; j++) {
    match[p[j] - 1] = j - 1;
    total += cost[(p[j] - 1) * n + (j - 1)];
  }
  return { match, cost: total };
}

export interface BottleneckMatching {
  /** The smallest achievable maximum edge weight over perfect matchings. */
  value: number;
  /** match[row] = column of a matching that achieves it. */
  match: Int32Array;
}

/**
 * Bottleneck perfect matching on an n × n weight matrix (row-major): minimise the largest weight used.
 * A threshold t is feasible iff the graph of edges no heavier than t has a perfect matching; we
 * binary-search t over the sorted weights and test each with augmenting paths (Kuhn's algorithm on
 * bitmasks, n ≤ 31). This is the hot loop of the scheduler; `bottleneckMatchingByAssignment` below
 * is the authors' formulation by repeated assignment solves, kept as the reference it is tested against.
 */
export function bottleneckMatching(w: ArrayLike<number>, n: number): BottleneckMatching {
  if (n > 31) return bottleneckMatchingByAssignment(w, n);
  const sorted = Float64Array.from(w as ArrayLike<number>).sort();
  const adj = new Int32Array(n);
  const matchCol = new Int32Array(n); // matchCol[col] = row, or -1
  let seen = 0;
  const augment = (row: number): boolean => {
    let free = adj[row] & ~seen;
    while (free) {
      const bit = free & -free;
      free ^= bit;
      seen |= bit;
      const col = 31 - Math.clz32(bit);
      if (matchCol[col] < 0 || augment(matchCol[col])) { matchCol[col] = row; return true; }
    }
    return false;
  };
  const perfect = (t: number): boolean => {
    for (let i = 0; i < n; i++) {
      let bits = 0;
      for (let j = 0; j < n; j++) if (w[i * n + j] <= t) bits |= 1 << j;
      if (bits === 0) return false;
      adj[i] = bits;
    }
    matchCol.fill(-1);
    for (let i = 0; i < n; i++) {
      seen = 0;
      if (!augment(i)) return false;
    }
    return true;
  };
  let lo = 0;
  let hi = sorted.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (perfect(sorted[mid])) hi = mid;
    else lo = mid + 1;
  }
  const value = sorted[lo];
  perfect(value);
  const match = new Int32Array(n);
  for (let j = 0; j < n; j++) match[matchCol[j]] = j;
  return { value, match };
}

/**
 * The same bottleneck matching by repeated assignment solves: a threshold t is feasible iff the
 * assignment with cost 1 on edges heavier than t (0 otherwise) costs 0, binary-searched over the
 * sorted weights, O(log n²) Hungarian solves. (The authors forbid edges one by one, heaviest first,
 * and re-solve each time: the same answer, up to n² solves.)
 */
export function bottleneckMatchingByAssignment(w: ArrayLike<number>, n: number): BottleneckMatching {
  const sorted = Float64Array.from(w as ArrayLike<number>).sort();
  const indicator = new Float64Array(n * n);
  const feasible = (t: number): Assignment => {
    for (let k = 0; k < n * n; k++) indicator[k] = w[k] > t ? 1 : 0;
    return solveAssignment(indicator, n);
  };
  // The largest weight is always feasible; find the smallest feasible one.
  let lo = 0;
  let hi = sorted.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (feasible(sorted[mid]).cost === 0) hi = mid;
    else lo = mid + 1;
  }
  const value = sorted[lo];
  return { value, match: feasible(value).match };
}

export interface TspPath {
  cost: number;
  /** Visiting order of all nodes. */
  path: number[];
}

/**
 * Exact open-loop travelling-salesman path (free start and end) over a symmetric or asymmetric
 * n × n cost matrix, by Held–Karp: best[mask][last] = cheapest path visiting `mask` ending at `last`.
 * Seeding best[{s}][s] = 0 for every s solves "from every start" in one O(2ⁿ n²) table.
 */
export function heldKarpPath(cost: ArrayLike<number>, n: number): TspPath {
  if (n === 1) return { cost: 0, path: [0] };
  const full = (1 << n) - 1;
  const best = new Float64Array((full + 1) * n).fill(Number.POSITIVE_INFINITY);
  const parent = new Int8Array((full + 1) * n).fill(-1);
  for (let s = 0; s < n; s++) best[(1 << s) * n + s] = 0;
  for (let mask = 1; mask <= full; mask++) {
    for (let last = 0; last < n; last++) {
      const here = best[mask * n + last];
      if (here === Number.POSITIVE_INFINITY || !(mask & (1 << last))) continue;
      for (let next = 0; next < n; next++) {
        if (mask & (1 << next)) continue;
        const m2 = mask | (1 << next);
        const c = here + cost[last * n + next];
        if (c < best[m2 * n + next]) { best[m2 * n + next] = c; parent[m2 * n + next] = last; }
      }
    }
  }
  let end = 0;
  for (let last = 1; last < n; last++) if (best[full * n + last] < best[full * n + end]) end = last;
  const path: number[] = [];
  let mask = full;
  let cur = end;
  while (cur !== -1) {
    path.push(cur);
    const p = parent[mask * n + cur];
    mask &= ~(1 << cur);
    cur = p;
  }
  path.reverse();
  return { cost: best[full * n + end], path };
}
