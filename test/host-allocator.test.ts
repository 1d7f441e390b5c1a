// The host allocator's large blocks (native/storage.cc): with the footprint at its budget (live
// high-water + 1/8), a miss for a large size class takes a cached block of another class and resizes
// it (mremap) instead of mapping a new one. Its own file: the test reads process-wide allocator state.
import test from 'ava';
import * as kiln from '../src/index.js';

const MiB = 1 << 20;

function checkValues(t: import('ava').ExecutionContext, x: kiln.Tensor, n: number, value: (i: number) => number, what: string) {
  const v = x.toArray() as number[];
  t.is(v.length, n, what);
  let bad = 0;
  for (let i = 0; i < n; i++) if (v[i] !== value(i)) bad++;
  t.is(bad, 0, `${what}: every element as written`);
}

test('a large allocation over the budget resizes a cached block of another size; data stays as written', (t) => {
  // 8 MiB live, then released: it stays cached.
  const a = kiln.full([(8 * MiB) / 4], 1);
  t.is((a.toArray() as number[])[123], 1);
  a.dispose();
  const cachedAfterRelease = kiln.memory().cpu.cachedBytes;
  t.true(cachedAfterRelease >= 8 * MiB, `8 MiB cached after release (${cachedAfterRelease})`);

  // 2 MiB: live 2 + cached 8 exceeds the budget (8 × 1.125): the cached 8 MiB block is shrunk to
  // 2 MiB and handed out, so the cache no longer holds it.
  // Its pages stay mapped: writing the 2 MiB touches no new page (unmapping the 8 MiB block and
  // mapping a fresh 2 MiB one, as before, took ~512 minor faults here).
  const nb = (2 * MiB) / 4;
  const faults0 = process.resourceUsage().minorPageFault;
  const b = kiln.full([nb], 2);
  const faults = process.resourceUsage().minorPageFault - faults0;
  const cachedAfterShrink = kiln.memory().cpu.cachedBytes;
  t.true(cachedAfterShrink <= cachedAfterRelease - 8 * MiB, `the 8 MiB block left the cache (${cachedAfterRelease} -> ${cachedAfterShrink})`);
  t.true(faults < 128, `writing the resized block took ${faults} minor page faults (a fresh 2 MiB mapping: 512)`);
  checkValues(t, b, nb, () => 2, 'shrunk block');
  b.dispose();

  // 8.5 MiB (class 9 MiB): live 9 + cached 2 exceeds the new budget (9 × 1.125): the cached 2 MiB
  // block grows to 9 MiB.
  const cachedBeforeGrow = kiln.memory().cpu.cachedBytes;
  const nc = (8.5 * MiB) / 4;
  const c = kiln.arange(0, nc);
  const cachedAfterGrow = kiln.memory().cpu.cachedBytes;
  t.true(cachedAfterGrow <= cachedBeforeGrow - 2 * MiB, `the 2 MiB block left the cache (${cachedBeforeGrow} -> ${cachedAfterGrow})`);
  checkValues(t, c, nc, (i) => i, 'grown block');
  c.dispose();

  // The footprint follows the live high-water mark: nothing beyond 1.125 × 9 MiB stays cached.
  t.true(kiln.memory().cpu.cachedBytes <= 9 * MiB * 1.125 + MiB, `cached ${kiln.memory().cpu.cachedBytes}`);
});
