// Reverse-mode autograd: a tensor remembers the node that made it; backward() walks the graph in
// reverse topological order, accumulating gradients, and frees intermediate gradients as soon as
// every consumer has used them.
import { KilnError, shapeStr } from '../errors.js';
import { Tensor, type GradNode } from './tensor.js';
import { releaseData, tidy } from './storage.js';

let gradEnabled = true;

export function isGradEnabled(): boolean {
  return gradEnabled;
}

/** Runs fn without recording the graph (like torch.no_grad()). */
export function noGrad<T>(fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = false;
  try {
    return fn();
  } finally {
    gradEnabled = prev;
  }
}

export function enableGrad<T>(fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = true;
  try {
    return fn();
  } finally {
    gradEnabled = prev;
  }
}

/**
 * Marks activations that only the module that made them can see (no caller reads them after
 * backward), so backward frees them as soon as they are no longer needed. Returns the first.
 */
export function internal<T extends Tensor>(t: T, ...more: Tensor[]): T {
  t._internal = true;
  for (const m of more) m._internal = true;
  return t;
}

/** Records `out` as produced by `inputs` when any of them needs a gradient. */
export function record(out: Tensor, name: string, inputs: readonly Tensor[], backward: GradNode['backward']): Tensor {
  if (!gradEnabled) return out;
  let needs = false;
  for (let i = 0; i < inputs.length; i++) if (inputs[i].requiresGrad) { needs = true; break; }
  if (!needs) return out;
  out.requiresGrad = true;
  out._node = { name, inputs, backward };
  return out;
}

export interface BackwardOptions {
  retainGraph?: boolean;
}

type Ops = {
  onesLike(t: Tensor): Tensor;
  add(a: Tensor, b: Tensor): Tensor;
  clone(t: Tensor): Tensor;
};
let ops: Ops | null = null;
/** Set by src/ops at load: the few ops the engine itself needs. */
export function setAutogradOps(o: Ops): void {
  ops = o;
}

export function backward(root: Tensor, grad?: Tensor, opts: BackwardOptions = {}): void {
  const o = ops!;
  root.assertLive('backward');
  if (!root.requiresGrad)
    throw new KilnError('NOT_DIFFERENTIABLE', 'backward: the tensor does not require grad (no input had requiresGrad)');
  if (grad !== undefined && grad !== null && !(grad instanceof Tensor))
    throw new KilnError('INVALID_ARGUMENT', `backward: the gradient must be a Tensor, got ${typeof grad} (options go in the second argument: backward(undefined, { retainGraph: true }))`);
  if (grad) grad.assertLive('backward (the gradient)');
  if (!grad && root.size !== 1)
    throw new KilnError('SHAPE_MISMATCH', `backward: a gradient is needed for a non-scalar output of shape ${shapeStr(root.shape)}`);
  if (grad && grad.device !== root.device)
    throw new KilnError('DEVICE_MISMATCH', `backward: gradient on ${grad.device} for output ${shapeStr(root.shape)} on ${root.device}`);
  if (grad && grad.dtype !== root.dtype)
    throw new KilnError('DTYPE_MISMATCH', `backward: gradient of dtype ${grad.dtype} for output ${shapeStr(root.shape)} of dtype ${root.dtype}`);
  if (grad && grad.size !== root.size)
    throw new KilnError('SHAPE_MISMATCH', `backward: gradient of shape ${shapeStr(grad.shape)} for output ${shapeStr(root.shape)}`);

  // Topological order (iterative DFS: deep graphs must not overflow the stack). A tensor whose node
  // was freed is refused here, before any gradient is made.
  const order: Tensor[] = [];
  const seen = new Set<Tensor>();
  const stack: [Tensor, number][] = [[root, 0]];
  seen.add(root);
  while (stack.length) {
    const top = stack[stack.length - 1];
    const [t, i] = top;
    if (i === 0 && !t._node && t._freedNode) freedNode(t, t._freedNode);
    const inputs = t._node ? t._node.inputs : [];
    if (i < inputs.length) {
      top[1]++;
      const x = inputs[i];
      if (x.requiresGrad && !seen.has(x)) {
        seen.add(x);
        stack.push([x, 0]);
      }
    } else {
      stack.pop();
      order.push(t);
    }
  }

  const firstNew = nextIdProbe();
  const grads = new Map<Tensor, Tensor>();
  const holds = new Map<Tensor, number>();
  const hold = (g: Tensor) => holds.set(g, (holds.get(g) ?? 0) + 1);
  const drop = (g: Tensor) => {
    const c = (holds.get(g) ?? 1) - 1;
    if (c > 0) holds.set(g, c);
    else {
      holds.delete(g);
      if (g.id >= firstNew) g.dispose(); // never free a tensor that existed before backward
    }
  };
  const accumulate = (x: Tensor, g: Tensor) => {
    const prev = grads.get(x);
    if (!prev) {
      grads.set(x, g);
      hold(g);
      return;
    }
    const sum = o.add(prev, g);
    grads.set(x, sum);
    hold(sum);
    hold(g);
    drop(prev);
    drop(g);
  };

  const rootGrad = grad ? (grad.shape.length === root.shape.length ? grad : grad.reshape(root.shape)) : o.onesLike(root);
  accumulate(root, rootGrad);
  const prevEnabled = gradEnabled;
  gradEnabled = false;
  let stepGrads: readonly (Tensor | null | undefined)[] = [];
  try {
    for (let k = order.length - 1; k >= 0; k--) {
      const t = order[k];
      const g = grads.get(t);
      if (!g) continue;
      const node = t._node;
      if (node) {
        // In its own scope: temporaries of the step (transposes, products, casts) are freed at
        // once instead of living until the caller's scope ends.
        const gs = (stepGrads = tidy(() => node.backward(g)));
        for (let i = 0; i < node.inputs.length; i++) {
          const x = node.inputs[i];
          const gi = gs[i];
          if (!gi || !x.requiresGrad) {
            if (gi && gi !== g && gi.id >= firstNew && !holds.has(gi)) gi.dispose();
            continue;
          }
          if (gi.size !== x.size)
            throw new KilnError('INTERNAL', `backward of ${node.name}: gradient ${shapeStr(gi.shape)} for input ${shapeStr(x.shape)}`);
          accumulate(x, gi.shape.length === x.shape.length ? gi : gi.reshape(x.shape));
        }
        stepGrads = [];
        if (!opts.retainGraph) {
          t._node = null;
          t._freedNode = { name: node.name, by: 'backward' };
          // Every consumer of t ran before t (reverse topological order) and t's own step just
          // ran, so an internal activation's values are needed by nothing left: free them now,
          // as PyTorch frees saved tensors during backward (not if its storage is shared).
          if (t._internal && t.storage.refs === 1) releaseData(t);
        }
      } else if (t.requiresGrad && t.isDisposed) {
        // A leaf disposed after use: nothing can read its gradient, so free it rather than leak it.
        grads.delete(t);
        drop(g);
        continue;
      } else if (t.requiresGrad) {
        // A leaf: hand the gradient over (a copy if something else still holds the same object).
        let own: Tensor;
        if ((holds.get(g) ?? 0) === 1 && g.id >= firstNew) {
          holds.delete(g);
          own = g;
        } else {
          own = o.clone(g);
          drop(g);
        }
        grads.delete(t);
        if (t.grad) {
          const sum = o.add(t.grad, own);
          t.grad.dispose();
          own.dispose();
          own = sum;
        }
        t.grad = own;
        own._kept = true;
        continue;
      }
      grads.delete(t);
      drop(g);
    }
  } catch (e) {
    // A step failed (a saved tensor disposed, say): free the gradients this pass made and still
    // holds, which no one else can reach (outside a scope they would wait for the collector).
    // Gradients already handed to leaves stay, as in PyTorch.
    for (const gi of stepGrads) if (gi && gi.id >= firstNew && !holds.has(gi)) gi.dispose();
    for (const h of holds.keys()) if (h.id >= firstNew) h.dispose();
    throw e;
  } finally {
    gradEnabled = prevEnabled;
  }
}

function freedNode(t: Tensor, f: { name: string; by: 'dispose' | 'backward' }): never {
  if (f.by === 'dispose')
    throw new KilnError('DISPOSED', `backward: the ${f.name} result ${shapeStr(t.shape)} on the path to the inputs was disposed before the ` +
      'backward pass, so they would get no gradient (run backward inside the tidy that made it, or keep the tensor)');
  throw new KilnError('INVALID_ARGUMENT', `backward: the graph through the ${f.name} result ${shapeStr(t.shape)} was freed by an earlier ` +
    'backward (pass { retainGraph: true } to that backward to go through the graph again, or detach the tensor)');
}

function nextIdProbe(): number {
  // The id the next tensor will get: everything at or above it is made by this backward pass.
  return (Tensor as unknown as { peekNextId(): number }).peekNextId();
}
