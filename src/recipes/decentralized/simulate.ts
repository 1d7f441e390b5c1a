// A discrete-event simulation of one training iteration of a layout under a GPipe schedule, so a
// plan reports an estimated iteration time and not only the cost model's number.
//
// Every device runs its stage's tasklets in GPipe program order: the forward of micro-batches
// 0..M-1, then their backward in reverse. A forward needs the activation of the previous stage, a
// backward the gradient from the next stage; each transfer takes α + (c_PP / M) / β on the pair's
// link and queues on the sender's network interface. Compute takes FLOPs / device FLOP/s. When all
// members of a stage's data-parallel group have finished their backward, each device runs the
// sharded parameter-server exchange, Σ over its group-mates of 2(α + c_DP / (D_DP β)) on its
// interface. The iteration ends when the last exchange does.
import type { CostModel, Layout } from './cost.js';

interface Task {
  resource: number;
  duration: number;
  deps: number[];
}

export interface SimulationResult {
  /** Seconds for one iteration (forward, backward and gradient synchronisation). */
  iteration: number;
  /** When the last backward tasklet finished. */
  pipelineDone: number;
  /** Pure compute of one stage (all micro-batches, forward + backward) on the slowest device. */
  computePerStage: number;
  /** Share of the iteration a device spends computing, averaged over devices. */
  utilisation: number;
}

/** Tiny binary min-heap of [time, task] events. */
class EventQueue {
  private t: number[] = [];
  private id: number[] = [];
  get size(): number { return this.t.length; }
  push(time: number, task: number): void {
    const t = this.t, id = this.id;
    let i = t.length;
    t.push(time); id.push(task);
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (t[p] < time || (t[p] === time && id[p] <= task)) break;
      t[i] = t[p]; id[i] = id[p]; i = p;
    }
    t[i] = time; id[i] = task;
  }
  pop(): [number, number] {
    const t = this.t, id = this.id;
    const top: [number, number] = [t[0], id[0]];
    const lt = t.pop()!, lid = id.pop()!;
    if (t.length) {
      let i = 0;
      for (;;) {
        let c = 2 * i + 1;
        if (c >= t.length) break;
        if (c + 1 < t.length && (t[c + 1] < t[c] || (t[c + 1] === t[c] && id[c + 1] < id[c]))) c++;
        if (t[c] > lt || (t[c] === lt && id[c] >= lid)) break;
        t[i] = t[c]; id[i] = id[c]; i = c;
      }
      t[i] = lt; id[i] = lid;
    }
    return top;
  }
}

/** Run tasks (each resource executes its tasks in creation order, each after its deps); finish times. */
function runEvents(tasks: Task[], resources: number): Float64Array {
  const queues: number[][] = Array.from({ length: resources }, () => []);
  const waiting = new Int32Array(tasks.length);
  const dependents: number[][] = tasks.map(() => []);
  tasks.forEach((task, k) => {
    queues[task.resource].push(k);
    waiting[k] = task.deps.length;
    for (const d of task.deps) dependents[d].push(k);
  });
  const head = new Int32Array(resources);
  const busy = new Uint8Array(resources);
  const events = new EventQueue();
  let done = 0;
  const finish = new Float64Array(tasks.length);
  const tryStart = (res: number, now: number) => {
    if (busy[res] || head[res] >= queues[res].length) return;
    const k = queues[res][head[res]];
    if (waiting[k] > 0) return;
    busy[res] = 1;
    head[res]++;
    events.push(now + tasks[k].duration, k);
  };
  for (let r = 0; r < resources; r++) tryStart(r, 0);
  while (events.size) {
    const [now, k] = events.pop();
    done++;
    finish[k] = now;
    busy[tasks[k].resource] = 0;
    for (const d of dependents[k]) waiting[d]--;
    tryStart(tasks[k].resource, now);
    for (const d of dependents[k]) tryStart(tasks[d].resource, now);
  }
  if (done !== tasks.length) throw new Error(`simulation deadlocked: ${done} of ${tasks.length} tasklets ran`);
  return finish;
}

/** Simulate one GPipe iteration of `layout` (layout[stage][replica] = device). */
export function simulateIteration(m: CostModel, layout: Layout, microBatches = m.workload.microBatches): SimulationResult {
  const { n, net, workload } = m;
  const S = layout.length;
  const R = layout[0].length;
  const M = microBatches;
  const at = (i: number, j: number) => i * n + j;
  const transfer = (a: number, b: number) => net.delay[at(a, b)] + workload.cPP / M / net.bandwidth[at(a, b)];
  // Resources: device d computes on resource d and sends on resource n + d.
  const tasks: Task[] = [];
  const add = (resource: number, duration: number, deps: number[]) => tasks.push({ resource, duration, deps }) - 1;
  const fwd: number[][][] = layout.map((row) => row.map(() => []));
  const bwd: number[][][] = layout.map((row) => row.map(() => []));
  let slowest = 0;
  let busyTotal = 0;
  for (let r = 0; r < R; r++) {
    for (let mb = 0; mb < M; mb++) {
      for (let s = 0; s < S; s++) {
        const d = layout[s][r];
        const deps: number[] = [];
        if (s > 0) deps.push(add(n + layout[s - 1][r], transfer(layout[s - 1][r], d), [fwd[s - 1][r][mb]]));
        fwd[s][r][mb] = add(d, workload.stageFlops / 3 / M / net.flops[d], deps);
      }
    }
  }
  // Add backward in the order each device runs it: micro-batches M-1..0, last stage first.
  for (let r = 0; r < R; r++) {
    for (let mb = M - 1; mb >= 0; mb--) {
      for (let s = S - 1; s >= 0; s--) {
        const d = layout[s][r];
        const deps = [fwd[s][r][M - 1]]; // GPipe: backward starts after the device's last forward
        if (s < S - 1) deps.push(add(n + layout[s + 1][r], transfer(layout[s + 1][r], d), [bwd[s + 1][r][mb]]));
        bwd[s][r][mb] = add(d, (2 * workload.stageFlops) / 3 / M / net.flops[d], deps);
      }
    }
  }
  for (let s = 0; s < S; s++) for (let r = 0; r < R; r++) {
    const t = workload.stageFlops / net.flops[layout[s][r]];
    slowest = Math.max(slowest, t);
    busyTotal += t;
  }
  // The gradient exchange of each stage group, after all of its members' backward passes.
  const lastBackward: number[] = [];
  for (let s = 0; s < S; s++) {
    const groupDone = layout[s].map((_, r) => bwd[s][r][0]);
    lastBackward.push(...groupDone);
    for (const v of layout[s]) {
      let t = 0;
      for (const u of layout[s]) if (u !== v) t += m.dpLink[at(v, u)];
      add(n + v, t, groupDone);
    }
  }
  const finish = runEvents(tasks, 2 * n);
  const iteration = finish.reduce((a, b) => Math.max(a, b), 0);
  const pipelineDone = lastBackward.reduce((a, k) => Math.max(a, finish[k]), 0);
  return { iteration, pipelineDone, computePerStage: slowest, utilisation: busyTotal / (n * iteration) };
}

/** Megatron-LM's default rank order with no tensor parallelism: consecutive ranks form a stage's DP group. */
export function megatronLayout(stages: number, replicas: number): Layout {
  return Array.from({ length: stages }, (_, s) => Array.from({ length: replicas }, (_, r) => s * replicas + r));
}
