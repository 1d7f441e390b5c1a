// Module: the base of every layer. Parameters, buffers and submodules are found by walking the
// module's own properties in the order they were assigned (like PyTorch's __setattr__ registry),
// so a layer reads as plain TypeScript: `this.weight = parameter(...)`, `this.blocks = [...]`.
import { KilnError, shapeStr } from '../errors.js';
import { noGrad } from '../tensor/autograd.js';
import type { Device, DType } from '../tensor/dtype.js';
import { keep } from '../tensor/storage.js';
import { Tensor, stridedCopy } from '../tensor/tensor.js';
import { toDevice } from '../ops/device.js';
import { clone } from '../ops/views.js';

const parameterSet = new WeakSet<Tensor>();
const bufferSet = new WeakSet<Tensor>();

/** Marks a float tensor as a trainable parameter: it requires grad and survives every `tidy` scope. */
export function parameter(t: Tensor): Tensor {
  if (t.dtype === 'int32') throw new KilnError('DTYPE_MISMATCH', `parameter: needs a float tensor, got int32 ${shapeStr(t.shape)}`);
  t.requiresGrad = true;
  keep(t);
  parameterSet.add(t);
  return t;
}

/** Marks a tensor as a buffer: saved in the state dict and moved by `to`, but not trained. */
export function buffer(t: Tensor): Tensor {
  keep(t);
  bufferSet.add(t);
  return t;
}

export function isParameter(t: unknown): t is Tensor {
  return t instanceof Tensor && parameterSet.has(t);
}

export type StateDict = Record<string, Tensor>;

export interface LoadOptions {
  /** Refuse missing and unexpected keys (default true). Shapes and dtypes must always match. */
  strict?: boolean;
}

type Slot = { owner: object; key: string | number };

export abstract class Module {
  training = true;

  /** Every submodule's name and module (recursively, this one first with name ''). */
  *namedModules(prefix = ''): Generator<[string, Module]> {
    yield [prefix, this];
    for (const [key, value] of Object.entries(this)) {
      const name = prefix ? `${prefix}.${key}` : key;
      if (value instanceof Module) yield* value.namedModules(name);
      else if (Array.isArray(value))
        for (let i = 0; i < value.length; i++) if (value[i] instanceof Module) yield* (value[i] as Module).namedModules(`${name}.${i}`);
    }
  }

  /** Direct submodules (not recursive). */
  children(): Module[] {
    const out: Module[] = [];
    for (const value of Object.values(this)) {
      if (value instanceof Module) out.push(value);
      else if (Array.isArray(value)) for (const v of value) if (v instanceof Module) out.push(v);
    }
    return out;
  }

  /** Tensor slots of this module and its submodules: [name, tensor, where it lives]. */
  private *tensorSlots(kind: WeakSet<Tensor>): Generator<[string, Tensor, Slot]> {
    for (const [prefix, m] of this.namedModules()) {
      for (const [key, value] of Object.entries(m)) {
        const name = prefix ? `${prefix}.${key}` : key;
        if (value instanceof Tensor && kind.has(value)) yield [name, value, { owner: m, key }];
        else if (Array.isArray(value))
          for (let i = 0; i < value.length; i++)
            if (value[i] instanceof Tensor && kind.has(value[i])) yield [`${name}.${i}`, value[i], { owner: value, key: i }];
      }
    }
  }

  /** Parameters with their dotted names; a parameter shared by two modules (tied weights) appears once. */
  namedParameters(): [string, Tensor][] {
    const seen = new Set<Tensor>();
    const out: [string, Tensor][] = [];
    for (const [name, t] of this.tensorSlots(parameterSet)) {
      if (seen.has(t)) continue;
      seen.add(t);
      out.push([name, t]);
    }
    return out;
  }

  parameters(): Tensor[] {
    return this.namedParameters().map(([, t]) => t);
  }

  namedBuffers(): [string, Tensor][] {
    return [...this.tensorSlots(bufferSet)].map(([n, t]) => [n, t]);
  }

  /** Number of trainable elements. */
  numParameters(): number {
    return this.parameters().reduce((s, p) => s + p.size, 0);
  }

  train(on = true): this {
    for (const [, m] of this.namedModules()) m.training = on;
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  /** Clears every parameter's gradient. */
  zeroGrad(): void {
    for (const p of this.parameters()) {
      if (p.grad) {
        p.grad.dispose();
        p.grad = null;
      }
    }
  }

  /** Moves parameters and buffers to a device, or converts float ones to a dtype, in place. */
  to(target: Device | DType): this {
    const replaced = new Map<Tensor, Tensor>();
    const move = (t: Tensor): Tensor => {
      const done = replaced.get(t);
      if (done) return done;
      let out: Tensor;
      if (target === 'cpu' || target === 'cuda') out = noGrad(() => toDevice(t, target));
      else out = t.dtype === 'int32' || t.dtype === target ? t : noGrad(() => t.to(target));
      replaced.set(t, out);
      return out;
    };
    for (const kind of [parameterSet, bufferSet]) {
      const isParam = kind === parameterSet;
      for (const [, t, slot] of [...this.tensorSlots(kind)]) {
        const out = move(t);
        if (out === t) continue;
        if (isParam) parameter(out);
        else buffer(out);
        (slot.owner as Record<string | number, unknown>)[slot.key] = out;
      }
    }
    for (const [oldT] of replaced) if (replaced.get(oldT) !== oldT) oldT.dispose();
    return this;
  }

  /** Parameters then buffers by name (tied parameters once). The tensors are the live ones, not copies. */
  stateDict(): StateDict {
    const out: StateDict = {};
    for (const [n, t] of this.namedParameters()) out[n] = t;
    for (const [n, t] of this.namedBuffers()) out[n] = t;
    return out;
  }

  /**
   * Copies values from `state` into the module's tensors. Everything is checked first (missing and
   * unexpected keys when strict, shapes and dtypes always), so a refused load changes nothing.
   */
  loadStateDict(state: StateDict, opts: LoadOptions = {}): { missing: string[]; unexpected: string[] } {
    if (typeof state !== 'object' || state === null)
      throw new KilnError('INVALID_ARGUMENT', `loadStateDict: needs an object of named tensors, got ${state === null ? 'null' : typeof state}`);
    const strict = (opts ?? {}).strict ?? true;
    const own = this.stateDict();
    const missing = Object.keys(own).filter((k) => !(k in state));
    const unexpected = Object.keys(state).filter((k) => !(k in own));
    const problems: string[] = [];
    if (strict && missing.length) problems.push(`missing keys: ${missing.join(', ')}`);
    if (strict && unexpected.length) problems.push(`unexpected keys: ${unexpected.join(', ')}`);
    for (const [k, t] of Object.entries(own)) {
      const src = state[k];
      if (!src) continue;
      if (!(src instanceof Tensor)) problems.push(`${k}: not a Tensor`);
      else if (src.isDisposed) problems.push(`${k}: the tensor was disposed`);
      else if (src.shape.length !== t.shape.length || src.shape.some((d, i) => d !== t.shape[i]))
        problems.push(`${k}: shape ${shapeStr(src.shape)} in the state dict, ${shapeStr(t.shape)} in the model`);
      else if (src.dtype !== t.dtype) problems.push(`${k}: dtype ${src.dtype} in the state dict, ${t.dtype} in the model`);
    }
    if (problems.length) {
      const code = problems.some((p) => p.includes(' dtype ')) && !problems.some((p) => p.includes('shape') || p.includes('keys'))
        ? 'DTYPE_MISMATCH'
        : problems.some((p) => p.includes('shape')) && !problems.some((p) => p.includes('keys')) ? 'SHAPE_MISMATCH' : 'INVALID_ARGUMENT';
      throw new KilnError(code, `loadStateDict (${this.constructor.name}): ${problems.join('; ')}`);
    }
    for (const [k, t] of Object.entries(own)) {
      const src = state[k];
      if (!src || src === t) continue;
      const s = src.device === t.device ? src : noGrad(() => toDevice(src, t.device));
      copyInto(t, s);
      if (s !== src) s.dispose();
    }
    return { missing, unexpected };
  }

  /** Independent copies of the state (for EMA snapshots, best-model keeping, ...). */
  cloneState(): StateDict {
    const out: StateDict = {};
    for (const [k, t] of Object.entries(this.stateDict())) out[k] = keep(noGrad(() => clone(t)));
    return out;
  }

  /** Multi-line summary: each submodule with its parameter count. */
  toString(): string {
    const lines: string[] = [];
    for (const [name, m] of this.namedModules()) {
      const depth = name ? name.split('.').length : 0;
      const n = m.parameters().reduce((s, p) => s + p.size, 0);
      lines.push(`${'  '.repeat(depth)}${name || '(root)'}: ${m.constructor.name} (${n} params)`);
    }
    return lines.join('\n');
  }
}

/** Copies src's values into dst's memory (same shape and dtype), outside autograd. */
export function copyInto(dst: Tensor, src: Tensor): void {
  dst.assertLive('copy');
  src.assertLive('copy');
  stridedCopy(dst, src);
}

/** Calls `fn` on every module of a tree (like torch's Module.apply). */
export function applyModules(root: Module, fn: (m: Module, name: string) => void): void {
  for (const [name, m] of root.namedModules()) fn(m, name);
}
