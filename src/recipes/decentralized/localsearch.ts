// Circular Kernighan–Lin local search over balanced partitions (the paper's local step, after
// Kim & Moon's cyclic partitioning): a cycle moves a device out of a start group S0 into another group,
// then a device out of that group into a third, and so on, until a move lands back in S0 or a closing
// move from the current group to S0 is taken; sizes are balanced again whenever a cycle closes. The
// best-gaining prefix of each cycle (with its closing move) is kept, moved devices are locked, and
// the pass ends when no cycle gains.
//
// Two gains, each the estimated benefit of moving device v from its group P to group Q:
//   standard  the textbook KL gain on the DP edge weights w = 2(α + c_DP/(D_DP β)):
//             Σ_{u∈P, u≠v} w(v,u) − Σ_{u∈Q} w(v,u), i.e. how much cheaper v's in-group links get.
//   paper     the heuristic of the authors' scheduler, built for the pipeline matching: with
//             p = α + c_PP/β, gain = mean_{u∈Q} p(v,u) − min_{u∈P, u≠v} p(v,u). A device that has a
//             close twin in its own group is redundant there, and it is most useful in the group that
//             is far from it on average, where it gives the bottleneck matching a near partner. Groups
//             then become alike, so every pair of them can be matched along fast links. As in their
//             code, the device that leaves a group is the one with the closest group-mate.
import type { CostModel } from './cost.js';

export type GainKind = 'paper' | 'standard';

interface Move { v: number; from: number; to: number; gain: number }

/** Improve a balanced partition in place (labels[device] = group) with one circular KL pass. */
export function circularKL(m: CostModel, labels: Int32Array, kind: GainKind): void {
  const { n, stages: S, ppLink: pp, dpLink: dp } = m;
  const groups: number[][] = Array.from({ length: S }, () => []);
  for (let v = 0; v < n; v++) groups[labels[v]].push(v);
  // sum[v*S+g]: Σ over u in g (u ≠ v) of the link weight the gain needs (pp for paper, dp for standard).
  const w = kind === 'paper' ? pp : dp;
  const sum = new Float64Array(n * S);
  for (let v = 0; v < n; v++) for (let u = 0; u < n; u++) if (u !== v) sum[v * S + labels[u]] += w[v * n + u];
  // ownMin[v]: the cheapest pp link from v to another member of its group (paper gain only).
  const ownMin = new Float64Array(n);
  const refreshOwnMin = (g: number) => {
    for (const v of groups[g]) {
      let best = groups[g].length > 1 ? Infinity : 0;
      for (const u of groups[g]) if (u !== v && pp[v * n + u] < best) best = pp[v * n + u];
      ownMin[v] = best;
    }
  };
  if (kind === 'paper') for (let g = 0; g < S; g++) refreshOwnMin(g);
  const locked = new Uint8Array(n);

  const gainOf = (v: number, from: number, to: number): number => kind === 'paper'
    ? sum[v * S + to] / Math.max(1, groups[to].length) - ownMin[v]
    : sum[v * S + from] - sum[v * S + to];

  const apply = (v: number, from: number, to: number) => {
    const g = groups[from];
    g.splice(g.indexOf(v), 1);
    groups[to].push(v);
    labels[v] = to;
    for (let u = 0; u < n; u++) {
      if (u === v) continue;
      const x = w[u * n + v];
      sum[u * S + from] -= x;
      sum[u * S + to] += x;
    }
    if (kind === 'paper') { refreshOwnMin(from); refreshOwnMin(to); }
  };

  /**
   * Best move of an unlocked device out of `from` (to a given group, or to any other). With the
   * paper's gain the device that leaves is, as in the authors' scheduler, the group's most redundant
   * one (the closest twin); the standard gain considers every device.
   */
  const bestMove = (from: number, onlyTo = -1): Move | undefined => {
    let best: Move | undefined;
    let leaver = -1;
    if (kind === 'paper') {
      let closest = Infinity;
      for (const v of groups[from]) if (!locked[v] && ownMin[v] < closest) { closest = ownMin[v]; leaver = v; }
    }
    for (const v of groups[from]) {
      if (locked[v] || (leaver >= 0 && v !== leaver)) continue;
      for (let to = 0; to < S; to++) {
        if (to === from || (onlyTo >= 0 && to !== onlyTo)) continue;
        const g = gainOf(v, from, to);
        if (!best || g > best.gain) best = { v, from, to, gain: g };
      }
    }
    return best;
  };

  for (let cycle = 0; cycle < S; cycle++) {
    // Start from the group whose best move gains most.
    let start: Move | undefined;
    for (let g = 0; g < S; g++) {
      const mv = bestMove(g);
      if (mv && (!start || mv.gain > start.gain)) start = mv;
    }
    if (!start) break;
    const s0 = start.from;
    const moves: Move[] = [];
    let cum = 0;
    let bestTotal = 1e-12;
    let bestLen = 0;
    let bestClose: Move | undefined;
    let mv: Move | undefined = start;
    while (mv) {
      apply(mv.v, mv.from, mv.to);
      locked[mv.v] = 1;
      moves.push(mv);
      cum += mv.gain;
      if (mv.to === s0) {
        if (cum > bestTotal) { bestTotal = cum; bestLen = moves.length; bestClose = undefined; }
        break;
      }
      const close = bestMove(mv.to, s0);
      if (close && cum + close.gain > bestTotal) { bestTotal = cum + close.gain; bestLen = moves.length; bestClose = close; }
      mv = bestMove(mv.to);
    }
    // Undo everything past the best prefix, then close the cycle if the prefix did not.
    for (let k = moves.length - 1; k >= bestLen; k--) {
      apply(moves[k].v, moves[k].to, moves[k].from);
      locked[moves[k].v] = 0;
    }
    if (bestLen === 0) break;
    if (bestClose) { apply(bestClose.v, bestClose.from, bestClose.to); locked[bestClose.v] = 1; }
  }
}
