// The paper's communication cost model (Section 3.2). N devices run D_PP pipeline stages of D_DP
// data-parallel replicas each. A *partition* puts the devices into D_PP groups of D_DP; every group
// holds one stage. A *layout* additionally fixes, for every stage and replica, the device that runs it.
//
//   DP cost  = max over groups, max over a device v of the group, of
//              Σ_{u in group, u ≠ v} 2 (α_vu + c_DP / (D_DP β_vu))   (sharded parameter server)
//   PP cost  = for a layout: Σ over consecutive stages of max over replicas of α + c_PP / β;
//              for a partition: the best layout, i.e. an open travelling-salesman path over the groups
//              whose edge cost is the bottleneck perfect matching between two groups.
//   total    = DP + ppWeight · PP, with ppWeight = 2 by default: the authors' code (DT-FM,
//              scheduler.py) adds the pipeline term twice, once for activations forward and once for
//              their gradients backward. ppWeight = 1 gives the paper's formula as printed.
import type { Network } from './network.js';
import { bottleneckMatching, heldKarpPath } from './matching.js';

export interface Workload {
  name: string;
  /** Bytes of one stage's parameters/gradients synchronised by data parallelism (c_DP). */
  cDP: number;
  /** Bytes of activations sent between two stages per macro-batch (c_PP). */
  cPP: number;
  /** Forward + backward FLOPs of one stage on one replica's macro-batch (for the simulation). */
  stageFlops: number;
  /** GPipe micro-batches per macro-batch (for the simulation). */
  microBatches: number;
}

/**
 * GPT3-XL as the paper trains it: 1.3B parameters, 24 layers, 3 layers per stage (8 × 8 layout).
 * c_DP: 1.3e9 / 8 parameters per stage × 4 bytes ≈ 0.65 GB. c_PP ≈ 0.47 GB of fp16 activations per
 * macro-batch, i.e. c_PP / (2 bytes × d_model 2048) ≈ 115k tokens, so one stage does
 * 6 × 0.1625e9 × 115k ≈ 1.1e14 FLOPs per iteration (6 FLOPs per parameter per token, forward + backward).
 */
export function gpt3XL(stages = 8): Workload {
  const params = 1.3e9;
  const tokens = 0.47e9 / (2 * 2048);
  return {
    name: 'GPT3-XL (1.3B)',
    cDP: (params / stages) * 4, // fp32 gradients of one stage: 0.65 GB at 8 stages
    cPP: 0.47e9,
    stageFlops: 6 * (params / stages) * tokens,
    microBatches: 4,
  };
}

/** Per-pair link costs, precomputed once per (network, workload). */
export interface CostModel {
  net: Network;
  workload: Workload;
  n: number;
  stages: number;
  replicas: number;
  ppWeight: number;
  /** dpLink[i*n+j] = 2 (α + c_DP / (D_DP β)). */
  dpLink: Float64Array;
  /** ppLink[i*n+j] = α + c_PP / β. */
  ppLink: Float64Array;
}

export function costModel(net: Network, workload: Workload = gpt3XL(net.stages), ppWeight = 2): CostModel {
  const { n, stages } = net;
  if (n % stages !== 0) throw new Error(`${stages} stages do not divide ${n} devices`);
  const replicas = n / stages;
  const dpLink = new Float64Array(n * n);
  const ppLink = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      if (i === j) continue;
      const a = net.delay[i * n + j];
      const b = net.bandwidth[i * n + j];
      dpLink[i * n + j] = 2 * (a + workload.cDP / (replicas * b));
      ppLink[i * n + j] = a + workload.cPP / b;
    }
  }
  return { net, workload, n, stages, replicas, ppWeight, dpLink, ppLink };
}

export interface CostBreakdown {
  dp: number;
  /** Pipeline cost before weighting. */
  pp: number;
  /** dp + ppWeight · pp. */
  total: number;
}

/** DP cost of a list of groups (each a list of device ids). */
export function dataParallelCost(m: CostModel, groups: readonly (readonly number[])[]): number {
  const { n, dpLink } = m;
  let worst = 0;
  for (const g of groups) {
    for (const v of g) {
      let s = 0;
      for (const u of g) if (u !== v) s += dpLink[v * n + u];
      if (s > worst) worst = s;
    }
  }
  return worst;
}

/** A layout: layout[stage][replica] = device. */
export type Layout = number[][];

/** Cost of a fixed layout: replica r's stage s on layout[s][r] sends to layout[s+1][r]. */
export function layoutCost(m: CostModel, layout: Layout): CostBreakdown {
  const dp = dataParallelCost(m, layout);
  let pp = 0;
  for (let s = 0; s + 1 < layout.length; s++) {
    let hop = 0;
    for (let r = 0; r < layout[s].length; r++) hop = Math.max(hop, m.ppLink[layout[s][r] * m.n + layout[s + 1][r]]);
    pp += hop;
  }
  return { dp, pp, total: dp + m.ppWeight * pp };
}

/** Group lists from a label array (labels[device] = group index in 0..stages-1). */
export function groupsOf(labels: ArrayLike<number>, stages: number): number[][] {
  const groups: number[][] = Array.from({ length: stages }, () => []);
  for (let v = 0; v < labels.length; v++) groups[labels[v]].push(v);
  return groups;
}

export interface PartitionEvaluation extends CostBreakdown {
  /** The best layout for this partition: stage order from Held–Karp, replicas from the matchings. */
  layout: Layout;
}

/** Cost of a partition with the best stage order and replica matching (the paper's PP model). */
export function partitionCost(m: CostModel, groups: number[][], withLayout: true): PartitionEvaluation;
export function partitionCost(m: CostModel, groups: number[][], withLayout?: false): CostBreakdown;
export function partitionCost(m: CostModel, groups: number[][], withLayout = false): CostBreakdown | PartitionEvaluation {
  const S = groups.length;
  const R = groups[0].length;
  const dp = dataParallelCost(m, groups);
  const between = new Float64Array(S * S);
  const matches: (Int32Array | undefined)[] = new Array(S * S);
  const w = new Float64Array(R * R);
  for (let a = 0; a < S; a++) {
    for (let b = a + 1; b < S; b++) {
      for (let i = 0; i < R; i++) for (let j = 0; j < R; j++) w[i * R + j] = m.ppLink[groups[a][i] * m.n + groups[b][j]];
      const bm = bottleneckMatching(w, R);
      between[a * S + b] = between[b * S + a] = bm.value;
      matches[a * S + b] = bm.match;
    }
  }
  const tsp = heldKarpPath(between, S);
  const pp = tsp.cost;
  const total = dp + m.ppWeight * pp;
  if (!withLayout) return { dp, pp, total };

  // Walk the path; replica r follows the matching from one group to the next.
  const order = tsp.path;
  const layout: Layout = [groups[order[0]].slice()];
  for (let k = 1; k < S; k++) {
    const a = order[k - 1];
    const b = order[k];
    const prev = layout[k - 1];
    const row = new Array<number>(R);
    const ga = groups[a];
    const gb = groups[b];
    // match (stored for a < b) maps row index in the smaller-numbered group to a column in the other.
    const mt = matches[Math.min(a, b) * S + Math.max(a, b)]!;
    const partner = new Map<number, number>();
    for (let i = 0; i < R; i++) {
      if (a < b) partner.set(ga[i], gb[mt[i]]);
      else partner.set(ga[mt[i]], gb[i]);
    }
    for (let r = 0; r < R; r++) row[r] = partner.get(prev[r])!;
    layout.push(row);
  }
  return { dp, pp, total, layout };
}
