// The physical side of the problem: devices in a complete graph, with a delay α (seconds) and a
// bandwidth β (bytes/s) on every pair, plus each device's effective compute speed.
// Custom networks load from JSON in one of two shapes (validated here, with errors naming the field):
//   regions: { "devices": [{ "region": "Oregon", "count": 8, "tflops": 50 }, ...],
//              "links": [{ "between": ["Oregon", "Virginia"], "delayMs": 67, "gbps": 0.79 }, ...],
//              "intraRegion": { "delayMs": 5, "gbps": 2 }, "stages": 8 }
//   matrix:  { "delayMs": [[...]], "gbps": [[...]], "tflops": 50 | [...], "stages": 8 }

export interface Network {
  name: string;
  /** Number of devices. */
  n: number;
  /** delay[i * n + j]: one-way latency α between devices i and j, in seconds. */
  delay: Float64Array;
  /** bandwidth[i * n + j]: β between devices i and j, in bytes per second. */
  bandwidth: Float64Array;
  /** Effective (achieved, not peak) FLOP/s of each device, for the iteration simulation. */
  flops: Float64Array;
  /** Optional location label of each device (a region, a node), for readable layouts. */
  regions?: string[];
  /** Number of pipeline stages D_PP; the data-parallel degree is n / stages. */
  stages: number;
}

/** A V100 at ~40% of its 125 TFLOP/s fp16 tensor-core peak: the GPU of the paper's experiments. */
export const DEFAULT_TFLOPS = 50;
export const GBPS = 1e9 / 8; // bytes per second in one gigabit per second
/**
 * Largest custom network: the paper's have 64 devices; a search over 256 already takes ~20 s per
 * 100 candidates on 2 cores, and the n² link matrices of a count like 100000 do not fit in memory.
 */
export const MAX_DEVICES = 1024;

/** A custom network description that failed validation; the message names the offending field. */
export class NetworkSpecError extends Error {
  constructor(readonly field: string, message: string) {
    super(`${field}: ${message}`);
    this.name = 'NetworkSpecError';
  }
}

/** Build a network from per-pair functions (delay in ms, bandwidth in Gbps). */
export function networkFromPairs(
  name: string,
  n: number,
  pair: (i: number, j: number) => { delayMs: number; gbps: number },
  opts: { regions?: string[]; tflops?: number | number[]; stages?: number } = {},
): Network {
  const delay = new Float64Array(n * n);
  const bandwidth = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    bandwidth[i * n + i] = Infinity;
    for (let j = 0; j < n; j++) {
      if (i === j) continue;
      const { delayMs, gbps } = pair(i, j);
      delay[i * n + j] = delayMs / 1e3;
      bandwidth[i * n + j] = gbps * GBPS;
    }
  }
  const t = opts.tflops ?? DEFAULT_TFLOPS;
  const flops = Float64Array.from({ length: n }, (_, i) => (typeof t === 'number' ? t : t[i]) * 1e12);
  return { name, n, delay, bandwidth, flops, regions: opts.regions, stages: opts.stages ?? 8 };
}

// ---------------------------------------------------------------------------------------------
// JSON loading and validation

type Json = unknown;

function isObject(x: Json): x is Record<string, Json> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function positive(x: Json, field: string, allowZero = false): number {
  if (typeof x !== 'number' || !Number.isFinite(x) || x < 0 || (!allowZero && x === 0)) {
    throw new NetworkSpecError(field, `must be a ${allowZero ? 'non-negative' : 'positive'} number, got ${JSON.stringify(x)}`);
  }
  return x;
}

function integer(x: Json, field: string, min: number): number {
  if (typeof x !== 'number' || !Number.isInteger(x) || x < min) {
    throw new NetworkSpecError(field, `must be an integer >= ${min}, got ${JSON.stringify(x)}`);
  }
  return x;
}

function square(x: Json, field: string, n: number | undefined, allowZero: boolean): number[][] {
  if (!Array.isArray(x) || x.length === 0) throw new NetworkSpecError(field, 'must be a non-empty square array of arrays');
  const size = n ?? x.length;
  if (x.length !== size) throw new NetworkSpecError(field, `has ${x.length} rows, expected ${size}`);
  const m: number[][] = [];
  for (let i = 0; i < size; i++) {
    const row = x[i];
    if (!Array.isArray(row) || row.length !== size) {
      throw new NetworkSpecError(`${field}[${i}]`, `must be an array of ${size} numbers`);
    }
    m.push(row.map((v, j) => (i === j ? 0 : positive(v, `${field}[${i}][${j}]`, allowZero))));
  }
  for (let i = 0; i < size; i++) {
    for (let j = i + 1; j < size; j++) {
      if (m[i][j] !== m[j][i]) {
        throw new NetworkSpecError(`${field}[${i}][${j}]`, `is ${m[i][j]} but ${field}[${j}][${i}] is ${m[j][i]}; links must be symmetric`);
      }
    }
  }
  return m;
}

function stagesField(spec: Record<string, Json>, n: number): number {
  const stages = spec.stages === undefined ? Math.min(8, n) : integer(spec.stages, 'stages', 1);
  if (stages > 12) throw new NetworkSpecError('stages', `must be at most 12 (Held–Karp is exponential in it), got ${stages}`);
  if (n % stages !== 0) throw new NetworkSpecError('stages', `(${stages}) must divide the number of devices (${n})`);
  return stages;
}

function tflopsField(x: Json, field: string, n: number): number | number[] {
  if (x === undefined) return DEFAULT_TFLOPS;
  if (typeof x === 'number') return positive(x, field);
  if (!Array.isArray(x) || x.length !== n) throw new NetworkSpecError(field, `must be a number or an array of ${n} numbers`);
  return x.map((v, i) => positive(v, `${field}[${i}]`));
}

/** Parse and validate a custom network (already JSON-decoded); throws NetworkSpecError. */
export function networkFromSpec(spec: Json, name = 'custom'): Network {
  if (!isObject(spec)) throw new NetworkSpecError('network', 'must be a JSON object');
  if (typeof spec.name === 'string') name = spec.name;
  if (spec.delayMs !== undefined || spec.gbps !== undefined) return matrixNetwork(spec, name);
  if (spec.devices !== undefined) return regionNetwork(spec, name);
  throw new NetworkSpecError('network', "needs either 'devices' (with 'links') or the matrices 'delayMs' and 'gbps'");
}

function matrixNetwork(spec: Record<string, Json>, name: string): Network {
  if (spec.delayMs === undefined) throw new NetworkSpecError('delayMs', "is missing (a matrix network needs both 'delayMs' and 'gbps')");
  if (spec.gbps === undefined) throw new NetworkSpecError('gbps', "is missing (a matrix network needs both 'delayMs' and 'gbps')");
  const d = square(spec.delayMs, 'delayMs', undefined, true);
  const b = square(spec.gbps, 'gbps', d.length, false);
  const n = d.length;
  if (n < 2) throw new NetworkSpecError('delayMs', 'needs at least 2 devices');
  if (n > MAX_DEVICES) throw new NetworkSpecError('delayMs', `has ${n} devices, more than the ${MAX_DEVICES} the scheduler takes`);
  const tflops = tflopsField(spec.tflops, 'tflops', n);
  let regions: string[] | undefined;
  if (spec.regions !== undefined) {
    if (!Array.isArray(spec.regions) || spec.regions.length !== n || !spec.regions.every((r) => typeof r === 'string')) {
      throw new NetworkSpecError('regions', `must be an array of ${n} strings`);
    }
    regions = spec.regions as string[];
  }
  return networkFromPairs(name, n, (i, j) => ({ delayMs: d[i][j], gbps: b[i][j] }), { tflops, regions, stages: stagesField(spec, n) });
}

function regionNetwork(spec: Record<string, Json>, name: string): Network {
  if (!Array.isArray(spec.devices) || spec.devices.length === 0) throw new NetworkSpecError('devices', 'must be a non-empty array');
  const regions: string[] = [];
  const tflops: number[] = [];
  spec.devices.forEach((dev, k) => {
    const f = `devices[${k}]`;
    if (!isObject(dev)) throw new NetworkSpecError(f, 'must be an object like { "region": "Oregon", "count": 8 }');
    if (typeof dev.region !== 'string' || dev.region === '') throw new NetworkSpecError(`${f}.region`, 'must be a non-empty string');
    const count = dev.count === undefined ? 1 : integer(dev.count, `${f}.count`, 1);
    if (regions.length + count > MAX_DEVICES) throw new NetworkSpecError(`${f}.count`, `brings the total past the ${MAX_DEVICES} devices the scheduler takes, got ${count}`);
    const t = dev.tflops === undefined ? DEFAULT_TFLOPS : positive(dev.tflops, `${f}.tflops`);
    for (let c = 0; c < count; c++) { regions.push(dev.region); tflops.push(t); }
  });
  const n = regions.length;
  if (n < 2) throw new NetworkSpecError('devices', 'needs at least 2 devices in total');

  const links = new Map<string, { delayMs: number; gbps: number }>();
  const key = (a: string, b: string) => (a < b ? `${a}\u0000${b}` : `${b}\u0000${a}`);
  const known = new Set(regions);
  const linkOf = (x: Json, f: string) => {
    if (!isObject(x)) throw new NetworkSpecError(f, 'must be an object with delayMs and gbps');
    return { delayMs: positive(x.delayMs, `${f}.delayMs`, true), gbps: positive(x.gbps, `${f}.gbps`) };
  };
  if (spec.links !== undefined && !Array.isArray(spec.links)) throw new NetworkSpecError('links', 'must be an array');
  ((spec.links ?? []) as Json[]).forEach((l, k) => {
    const f = `links[${k}]`;
    if (!isObject(l)) throw new NetworkSpecError(f, 'must be an object like { "between": ["A", "B"], "delayMs": 10, "gbps": 1 }');
    const btw = l.between;
    if (!Array.isArray(btw) || btw.length !== 2 || typeof btw[0] !== 'string' || typeof btw[1] !== 'string') {
      throw new NetworkSpecError(`${f}.between`, 'must be an array of two region names');
    }
    for (const r of btw as string[]) if (!known.has(r)) throw new NetworkSpecError(`${f}.between`, `names region '${r}', which no device is in`);
    links.set(key(btw[0], btw[1]), linkOf(l, f));
  });
  const intra = spec.intraRegion === undefined ? undefined : linkOf(spec.intraRegion, 'intraRegion');
  const pairOf = (a: string, b: string) => {
    const l = links.get(key(a, b)) ?? (a === b ? intra : undefined);
    if (!l) {
      throw new NetworkSpecError(a === b ? 'intraRegion' : 'links', a === b
        ? `is missing: devices share region '${a}' but no link is given inside it (set intraRegion or a link between ["${a}", "${a}"])`
        : `has no link between regions '${a}' and '${b}'`);
    }
    return l;
  };
  // Check every region pair once, up front, so the error is about regions and not device indices.
  const names = [...known];
  for (let a = 0; a < names.length; a++) for (let b = a; b < names.length; b++) {
    if (a === b && regions.filter((r) => r === names[a]).length < 2) continue;
    pairOf(names[a], names[b]);
  }
  return networkFromPairs(name, n, (i, j) => pairOf(regions[i], regions[j]), { regions, tflops, stages: stagesField(spec, n) });
}
