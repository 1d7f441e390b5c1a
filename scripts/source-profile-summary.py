#!/usr/bin/env python3
"""Summarizes an Nsight Compute source page (CSV, one row per SASS instruction; see
scripts/gpu-source-profile.sh): warp-state samples by opcode and by stall reason, and the hottest
instructions with their neighbours.
  python3 scripts/source-profile-summary.py FILE.csv [--top N] [--listing START-END]"""
import csv, sys, collections, re

def load(path):
    with open(path, newline='') as f:
        rows = list(csv.reader(f))
    # Row 0: kernel name; row 1: header; then instructions.
    name = rows[0][1] if len(rows[0]) > 1 else ''
    head = rows[1]
    out = []
    for r in rows[2:]:
        if len(r) != len(head):
            continue
        out.append(dict(zip(head, r)))
    return name, head, out

def num(x):
    try:
        return float(x)
    except ValueError:
        return 0.0

def main():
    path = sys.argv[1]
    top = int(sys.argv[sys.argv.index('--top') + 1]) if '--top' in sys.argv else 40
    name, head, ins = load(path)
    reasons = [h for h in head if h.startswith('stall_') and '(Not Issued)' not in h]
    total = sum(num(r['Warp Stall Sampling (All Samples)']) for r in ins)
    print(name)
    print(f'{len(ins)} instructions, {total:.0f} samples')
    by_reason = collections.Counter()
    for r in ins:
        for h in reasons:
            by_reason[h] += num(r[h])
    print('by reason: ' + ', '.join(f'{h[6:]} {100 * v / total:.1f}%' for h, v in by_reason.most_common(10)))
    by_op = collections.Counter(); ex_op = collections.Counter()
    for r in ins:
        op = r['Source'].strip().split()
        op = [t for t in op if not t.startswith('@')]
        op = op[0].split('.')[0] if op else '?'
        by_op[op] += num(r['Warp Stall Sampling (All Samples)'])
        ex_op[op] += num(r['Instructions Executed'])
    ex_total = sum(ex_op.values())
    print(f'executed warp instructions {ex_total:.0f}')
    print('by opcode (samples%, executed%): ' + ', '.join(f'{o} {100 * v / total:.1f}/{100 * ex_op[o] / ex_total:.1f}' for o, v in by_op.most_common(24)))
    print(f'\ntop {top} instructions (index, samples%, executed, top reasons):')
    idx = sorted(range(len(ins)), key=lambda i: -num(ins[i]['Warp Stall Sampling (All Samples)']))[:top]
    for i in sorted(idx):
        r = ins[i]
        rs = sorted(((num(r[h]), h[6:]) for h in reasons), reverse=True)[:3]
        print(f"{i:5d} {100 * num(r['Warp Stall Sampling (All Samples)']) / total:5.2f}% {r['Instructions Executed']:>9} "
              f"{r['Source'].strip()[:70]:70s} " + ' '.join(f'{n}:{v:.0f}' for v, n in rs if v > 0))
    if '--listing' in sys.argv:
        a, b = map(int, sys.argv[sys.argv.index('--listing') + 1].split('-'))
        for i in range(a, min(b, len(ins))):
            r = ins[i]
            rs = sorted(((num(r[h]), h[6:]) for h in reasons), reverse=True)[:2]
            print(f"{i:5d} {num(r['Warp Stall Sampling (All Samples)']):6.0f} {r['Instructions Executed']:>9} {r['Source'].strip()[:90]:90s} " + ' '.join(f'{n}:{v:.0f}' for v, n in rs if v > 0))

main()
