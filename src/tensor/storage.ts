// Storage and memory scopes. Small CPU buffers live in V8 ArrayBuffers (no native call to allocate
// or free them); larger ones and all device memory are native allocations addressed by handles.
// Scopes (`tidy`) and `dispose`/`using` free memory deterministically; a FinalizationRegistry
// frees what escaped every scope and was forgotten.
import { A, N } from '../native.js';
import { KilnError } from '../errors.js';
import { deviceCode, type Device } from './dtype.js';

/** CPU tensors up to this many bytes live in the V8 heap. */
export const SMALL_BYTES = 4096;

const smallPool: ArrayBuffer[][] = Array.from({ length: (SMALL_BYTES >> 6) + 1 }, () => []);

export class Storage {
  refs = 0;
  constructor(
    readonly device: Device,
    readonly bytes: number,
    public buf: ArrayBuffer | undefined,
    public handle: number,
  ) {}

  static alloc(device: Device, bytes: number): Storage {
    if (device === 'cpu' && bytes <= SMALL_BYTES) {
      live.bytes.cpu += bytes;
      // Creating an ArrayBuffer costs far more than a small op: recycle them by 64-byte class.
      const cls = (bytes + 63) >> 6;
      const buf = smallPool[cls].pop() ?? new ArrayBuffer(cls << 6);
      return new Storage('cpu', bytes, buf, 0);
    }
    const handle = N.alloc(deviceCode[device], bytes);
    live.bytes[device] += bytes;
    return new Storage(device, bytes, undefined, handle);
  }

  get freed(): boolean {
    return this.buf === undefined && this.handle === 0;
  }

  release(): void {
    if (--this.refs > 0) return;
    if (this.freed) return;
    live.bytes[this.device] -= this.bytes;
    if (this.handle !== 0) N.free(this.handle);
    else {
      const pool = smallPool[this.buf!.byteLength >> 6];
      if (pool.length < 1024) pool.push(this.buf!);
    }
    this.buf = undefined;
    this.handle = 0;
  }
}

/**
 * Frees a tensor's memory now while the tensor (and every view of it) stays in the autograd graph.
 * For activations whose values no backward step reads (only their shapes matter), so they need not
 * wait for the end of the scope; any later read of the data throws DISPOSED.
 */
export function releaseData(t: { storage: Storage }): void {
  const st = t.storage;
  if (st.freed) return;
  live.bytes[st.device] -= st.bytes;
  if (st.handle !== 0) N.free(st.handle);
  st.buf = undefined;
  st.handle = 0;
}

/** What the scope machinery needs from a tensor (implemented by Tensor). */
export interface Tracked {
  readonly storage: Storage;
  readonly device: Device;
  _disposed: boolean;
  _kept: boolean;
  _registered: boolean;
  dispose(): void;
}

export const live = {
  tensors: { cpu: 0, cuda: 0 } as Record<Device, number>,
  bytes: { cpu: 0, cuda: 0 } as Record<Device, number>,
};

const registry = new FinalizationRegistry<{ storage: Storage }>((held) => {
  live.tensors[held.storage.device]--;
  held.storage.release();
});

const scopes: Tracked[][] = [];
/** Per open scope: the list length at which its disposed entries are dropped next. */
const compactAt: number[] = [];
const COMPACT_MIN = 4096;

/** Adds t to the innermost scope. */
function addToScope(t: Tracked): void {
  const i = scopes.length - 1;
  const scope = scopes[i];
  scope.push(t);
  // A long loop inside one scope that disposes what it makes (or whose inner scopes hand it
  // kept tensors disposed later, like gradients cleared by zeroGrad) must not grow the list by
  // every tensor it ever saw: drop the disposed ones, amortised by doubling the threshold.
  if (scope.length >= compactAt[i]) {
    let n = 0;
    for (const x of scope) if (!x._disposed) scope[n++] = x;
    scope.length = n;
    compactAt[i] = Math.max(COMPACT_MIN, 2 * n);
  }
}

/** Called for every new tensor: inside a scope it is tracked, outside it gets the GC backstop. */
export function track(t: Tracked): void {
  live.tensors[t.device]++;
  t.storage.refs++;
  if (scopes.length > 0) addToScope(t);
  else defer(t);
}

// Registering with the FinalizationRegistry costs more than a small op, and most tensors made
// outside a scope are disposed right away: register them in batches, skipping the disposed ones.
// The pending list holds them strongly, so nothing can be collected before it is registered.
let pending: Tracked[] = [];
let flushQueued = false;
function defer(t: Tracked): void {
  pending.push(t);
  if (pending.length >= 1024) flushPending();
  else if (!flushQueued) {
    flushQueued = true;
    queueMicrotask(flushPending);
  }
}
function flushPending(): void {
  const list = pending;
  pending = [];
  flushQueued = false;
  for (const t of list) if (!t._disposed) register(t);
}

function register(t: Tracked): void {
  if (t._registered || t._disposed) return;
  t._registered = true;
  registry.register(t, { storage: t.storage }, t);
}

export function untrack(t: Tracked): void {
  if (t._registered) {
    registry.unregister(t);
    t._registered = false;
  }
  live.tensors[t.device]--;
  t.storage.release();
}

function collectResults(x: unknown, out: Set<unknown>, depth = 0): void {
  if (x === null || typeof x !== 'object' || depth > 4) return;
  if ((x as Tracked).storage instanceof Storage) {
    out.add(x);
    return;
  }
  if (Array.isArray(x) || x instanceof Set) for (const v of x) collectResults(v, out, depth + 1);
  else if (x instanceof Map) for (const v of x.values()) collectResults(v, out, depth + 1);
  else {
    // Plain objects, those made by Object.create(null) (safetensors' name -> tensor records) too.
    const proto = Object.getPrototypeOf(x);
    if (proto === Object.prototype || proto === null) for (const v of Object.values(x)) collectResults(v, out, depth + 1);
  }
}

/**
 * Runs `fn` and disposes every tensor created inside it, except those it returns (directly, or in
 * arrays, plain or null-prototype objects, Maps and Sets, up to 5 levels deep) and those passed to
 * `keep`. A tensor held by any other object (a class instance) is not seen: return it in a plain
 * object or `keep` it. Async functions are refused: a scope must not
 * span an await, because other work would interleave with it.
 */
export function tidy<T>(fn: () => T): T {
  const scope: Tracked[] = [];
  scopes.push(scope);
  compactAt.push(COMPACT_MIN);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    scopes.pop();
    compactAt.pop();
    for (const t of scope) if (!t._disposed && !t._kept) t.dispose();
    for (const t of scope) if (t._kept && !t._disposed) escape(t);
    throw e;
  }
  scopes.pop();
  compactAt.pop();
  if (result instanceof Promise) {
    for (const t of scope) if (!t._disposed && !t._kept) t.dispose();
    throw new KilnError('INVALID_ARGUMENT', 'tidy: the function returned a Promise; scopes cannot span an await');
  }
  const keepers = new Set<unknown>();
  collectResults(result, keepers);
  for (const t of scope) {
    if (t._disposed) continue;
    if (keepers.has(t) || t._kept) escape(t);
    else t.dispose();
  }
  return result;
}

function escape(t: Tracked): void {
  if (scopes.length > 0) addToScope(t);
  else defer(t);
}


/** Marks a tensor to survive the scopes it was created in (it still has the GC backstop). */
export function keep<T extends Tracked>(t: T): T {
  t._kept = true;
  return t;
}

export function inScope(): boolean {
  return scopes.length > 0;
}

export interface MemoryInfo {
  tensors: number;
  bytes: number;
  cpu: { tensors: number; bytes: number; nativeBytes: number; cachedBytes: number; /** high-water mark of native host bytes (all threads) */ peakNativeBytes: number };
  cuda?: { tensors: number; bytes: number; allocatedBytes: number; cachedBytes: number; reservedBytes: number };
}

export function memory(): MemoryInfo {
  const s = N.memoryStats();
  const info: MemoryInfo = {
    tensors: live.tensors.cpu + live.tensors.cuda,
    bytes: live.bytes.cpu + live.bytes.cuda,
    cpu: { tensors: live.tensors.cpu, bytes: live.bytes.cpu, nativeBytes: s.hostBytes, cachedBytes: s.hostCachedBytes, peakNativeBytes: s.hostPeakBytes },
  };
  if (s.cudaAllocations > 0 || s.cudaReservedBytes > 0 || live.tensors.cuda > 0)
    info.cuda = {
      tensors: live.tensors.cuda,
      bytes: live.bytes.cuda,
      allocatedBytes: s.cudaBytes,
      cachedBytes: s.cudaCachedBytes,
      reservedBytes: s.cudaReservedBytes,
    };
  return info;
}

/** Writes a storage reference into the argument buffer; returns the JS buffer argument. */
export function ref(pos: number, storage: Storage, byteOffset: number, dtypeCode: number): ArrayBuffer | undefined {
  A[pos] = storage.handle;
  A[pos + 1] = byteOffset;
  A[pos + 2] = dtypeCode;
  return storage.buf;
}
