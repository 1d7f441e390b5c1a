// Property tests (fast-check): broadcasting of random compatible shapes and random view chains,
// each against the plain reference's index arithmetic.
import test from 'ava';
import fc from 'fast-check';
import * as kiln from '../src/index.js';
import type { Tensor } from '../src/index.js';
import * as R from './helpers/reference.js';
import { assertClose } from './helpers/checkop.js';

const TOL = { atol: 1e-6, rtol: 1e-6 };
const values = (n: number, seed: number) => Array.from({ length: n }, (_, i) => Math.fround(Math.sin(seed * 7919 + i * 1.37) * 3));

/** Two shapes that broadcast: a common shape with some dims set to 1 in either, and leading dims dropped. */
const broadcastPair = fc
  .array(fc.integer({ min: 1, max: 4 }), { minLength: 0, maxLength: 4 })
  .chain((base) =>
    fc.tuple(
      fc.constant(base),
      fc.array(fc.integer({ min: 0, max: 2 }), { minLength: base.length, maxLength: base.length }),
      fc.integer({ min: 0, max: base.length }),
      fc.integer({ min: 0, max: base.length }),
    ),
  )
  .map(([base, mode, dropA, dropB]) => {
    const a = base.map((d, i) => (mode[i] === 1 ? 1 : d)).slice(dropA);
    const b = base.map((d, i) => (mode[i] === 2 ? 1 : d)).slice(dropB);
    return [a, b] as const;
  });

test('broadcast add/mul/sub/maximum match the reference for random compatible shapes', (t) => {
  fc.assert(
    fc.property(broadcastPair, fc.integer({ min: 0, max: 1000 }), ([sa, sb], seed) =>
      kiln.tidy(() => {
        const ra = R.ref(values(R.numel(sa), seed), sa), rb = R.ref(values(R.numel(sb), seed + 1), sb);
        const a = kiln.tensor(Float32Array.from(ra.data), { shape: sa.slice() });
        const b = kiln.tensor(Float32Array.from(rb.data), { shape: sb.slice() });
        const cases: [Tensor, R.Ref][] = [
          [a.add(b), R.add(ra, rb)],
          [a.mul(b), R.mul(ra, rb)],
          [b.sub(a), R.sub(rb, ra)],
          [kiln.maximum(a, b), R.zip(ra, rb, Math.max)],
        ];
        for (const [got, want] of cases) {
          if (JSON.stringify(got.shape) !== JSON.stringify(want.shape)) return false;
          const g = got.dataSync();
          for (let i = 0; i < g.length; i++) if (Math.abs(g[i] - want.data[i]) > 1e-5 * (1 + Math.abs(want.data[i]))) return false;
        }
        return true;
      }),
    ),
    { numRuns: 100, seed: 42 },
  );
  t.pass(); // fc.assert throws with the shrunk counterexample on failure
});

test('broadcast gradients sum back to each operand shape (x*y, vs the reference)', (t) => {
  fc.assert(
    fc.property(broadcastPair, ([sa, sb]) =>
      kiln.tidy(() => {
        const ra = R.ref(values(R.numel(sa), 3), sa), rb = R.ref(values(R.numel(sb), 5), sb);
        const a = kiln.tensor(Float64Array.from(ra.data), { shape: sa.slice(), requiresGrad: true });
        const b = kiln.tensor(Float64Array.from(rb.data), { shape: sb.slice(), requiresGrad: true });
        a.mul(b).sum().backward();
        // d/da sum(a*b) = sum of b over the broadcast dims, placed at a's shape.
        const out = R.broadcastShape(sa, sb);
        const ones = R.ref(new Array(R.numel(out)).fill(1), out);
        const gaFull = R.mul(ones, rb), gbFull = R.mul(ones, ra);
        const sumTo = (g: R.Ref, shape: number[]) => {
          const lead = g.shape.length - shape.length;
          const axes = g.shape.map((_, i) => i).filter((i) => i < lead || shape[i - lead] === 1);
          return R.reshape(R.reduce(g, 'sum', axes, true), shape);
        };
        const wa = sumTo(gaFull, sa), wb = sumTo(gbFull, sb);
        const ga = a.grad!.dataSync(), gb = b.grad!.dataSync();
        return ga.every((v, i) => Math.abs(v - wa.data[i]) < 1e-9) && gb.every((v, i) => Math.abs(v - wb.data[i]) < 1e-9);
      }),
    ),
    { numRuns: 60, seed: 7 },
  );
  t.pass();
});

type ViewStep =
  | { kind: 'permute'; perm: number[] }
  | { kind: 'transpose'; a: number; b: number }
  | { kind: 'narrow'; axis: number; start: number; len: number }
  | { kind: 'reshape'; shape: number[] };

/** A random chain of view ops applied to a random shape; each step is valid for the current shape. */
const viewChain = fc
  .tuple(
    fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 1, maxLength: 4 }),
    fc.array(fc.tuple(fc.integer({ min: 0, max: 3 }), fc.array(fc.nat(1000), { minLength: 6, maxLength: 6 })), { minLength: 1, maxLength: 6 }),
  )
  .map(([shape, raw]) => {
    const steps: ViewStep[] = [];
    let cur = shape.slice();
    for (const [k, r] of raw) {
      const n = cur.length;
      if (k === 0) {
        const perm = [...Array(n).keys()].sort((p, q) => ((r[p % 6] * 31 + p) % 97) - ((r[q % 6] * 31 + q) % 97));
        steps.push({ kind: 'permute', perm });
        cur = perm.map((p) => cur[p]);
      } else if (k === 1) {
        const a = r[0] % n, b = r[1] % n;
        steps.push({ kind: 'transpose', a, b });
        cur = cur.slice(); // steps keep their own arrays: never mutate one a step holds
        [cur[a], cur[b]] = [cur[b], cur[a]];
      } else if (k === 2) {
        const axis = r[0] % n, start = r[1] % cur[axis], len = 1 + (r[2] % (cur[axis] - start));
        steps.push({ kind: 'narrow', axis, start, len });
        cur = cur.slice();
        cur[axis] = len;
      } else {
        // Reshape into a random factorisation of the element count (at most 4 dims).
        let left = R.numel(cur);
        const next: number[] = [];
        for (let i = 0; i < 3 && left > 1; i++) {
          const divs = [...Array(left).keys()].map((d) => d + 1).filter((d) => left % d === 0);
          const d = divs[r[i + 3] % divs.length];
          next.push(d);
          left /= d;
        }
        next.push(left);
        steps.push({ kind: 'reshape', shape: next });
        cur = next.slice();
      }
    }
    return { shape, steps };
  });

function applyKiln(x: Tensor, s: ViewStep): Tensor {
  if (s.kind === 'permute') return x.permute(s.perm);
  if (s.kind === 'transpose') return x.transpose(s.a, s.b);
  if (s.kind === 'narrow') return x.narrow(s.axis, s.start, s.len);
  return x.reshape(s.shape);
}
function applyRef(x: R.Ref, s: ViewStep): R.Ref {
  if (s.kind === 'permute') return R.permute(x, s.perm);
  if (s.kind === 'transpose') return R.transpose(x, s.a, s.b);
  if (s.kind === 'narrow') return R.narrow(x, s.axis, s.start, s.len);
  return R.reshape(x, s.shape);
}

test('random permute/transpose/narrow/reshape chains then contiguous() match the reference', (t) => {
  fc.assert(
    fc.property(viewChain, ({ shape, steps }) =>
      kiln.tidy(() => {
        const n = R.numel(shape);
        let r = R.ref(Array.from({ length: n }, (_, i) => i), shape);
        let x = kiln.arange(0, n).reshape(shape.slice());
        for (const s of steps) {
          x = applyKiln(x, s);
          r = applyRef(r, s);
        }
        const c = x.contiguous();
        return c.isContiguous() && JSON.stringify(c.shape) === JSON.stringify(r.shape) && Array.from(c.dataSync()).every((v, i) => v === r.data[i]);
      }),
    ),
    { numRuns: 100, seed: 1 },
  );
  t.pass();
});

test('gradients flow back through random view chains to the right elements', (t) => {
  fc.assert(
    fc.property(viewChain, ({ shape, steps }) =>
      kiln.tidy(() => {
        const n = R.numel(shape);
        const x = kiln.zeros(shape.slice(), { dtype: 'float64', requiresGrad: true });
        let y: Tensor = x;
        let r = R.ref(Array.from({ length: n }, (_, i) => i), shape);
        for (const s of steps) {
          y = applyKiln(y, s);
          r = applyRef(r, s);
        }
        // Weight output position j by j+1: the gradient at source index r[j] is j+1 (views never repeat elements).
        const m = R.numel(r.shape);
        y.mul(kiln.arange(1, m + 1, 1, { dtype: 'float64' }).reshape(r.shape.slice())).sum().backward();
        const want = new Float64Array(n);
        r.data.forEach((src, j) => (want[src] = j + 1));
        return Array.from(x.grad!.dataSync()).every((v, i) => v === want[i]);
      }),
    ),
    { numRuns: 60, seed: 2 },
  );
  t.pass();
});

test('a broadcast-then-view chain (expand, then transpose) reads the reference values', (t) => {
  kiln.tidy(() => {
    const x = kiln.tensor([[1, 2, 3]]);
    const y = x.expand([2, 3]).transpose().contiguous();
    assertClose(t, 'expand+transpose', y.dataSync(), [1, 1, 2, 2, 3, 3], TOL);
    t.deepEqual(y.shape, [3, 2]);
  });
});
