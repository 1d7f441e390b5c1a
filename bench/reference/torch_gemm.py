#!/usr/bin/env python3
"""PyTorch reference timings for the shapes in bench/gemm_shapes.txt (float32, CPU).

Run with the system interpreter that has torch: /usr/bin/python3 bench/reference/torch_gemm.py
Options: --threads N (default 2), --reps R (median of R timed repeats, default 7), --shapes FILE,
--only a,b (shape names), --best (fastest repeat), --cpu-time (process CPU time, for a busy machine).
Prints one JSON object: {"threads": N, "results": [{"name", "ms", "gflops", ...}, ...]}.
"""
import argparse
import json
import os
import statistics
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))


def read_shapes(path):
    shapes = []
    with open(path) as f:
        for line in f:
            line = line.split('#', 1)[0].split()
            if not line:
                continue
            name, batch, ta, tb, m, n, k = line
            shapes.append(dict(name=name, batch=int(batch), transA=ta == 'T', transB=tb == 'T',
                               M=int(m), N=int(n), K=int(k)))
    return shapes


def make_op(s):
    b, m, n, k = s['batch'], s['M'], s['N'], s['K']
    a = torch.randn((b, k, m) if s['transA'] else (b, m, k))
    bb = torch.randn((b, n, k) if s['transB'] else (b, k, n))
    if b == 1:
        a, bb = a[0], bb[0]
    a = a.transpose(-1, -2) if s['transA'] else a  # a strided view, like a backward pass uses
    bb = bb.transpose(-1, -2) if s['transB'] else bb
    if b == 1:
        return lambda: torch.mm(a, bb)
    return lambda: torch.bmm(a, bb)


def time_op(fn, flops, reps, clock=time.perf_counter, best=False):
    fn()
    # Size the inner loop so one timed repeat lasts about 50 ms.
    t0 = clock(); fn(); one = max(clock() - t0, 1e-6)
    inner = max(1, min(1000, int(0.05 / one)))
    for _ in range(inner):
        fn()
    times = []
    for _ in range(reps):
        t0 = clock()
        for _ in range(inner):
            fn()
        times.append((clock() - t0) / inner)
    ms = (min(times) if best else statistics.median(times)) * 1e3
    return ms, flops / (ms * 1e-3) / 1e9


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--reps', type=int, default=7)
    p.add_argument('--shapes', default=os.path.join(HERE, '..', 'gemm_shapes.txt'))
    p.add_argument('--only', default=None, help='comma-separated shape names')
    p.add_argument('--best', action='store_true', help='fastest repeat instead of the median')
    p.add_argument('--cpu-time', action='store_true',
                   help='process CPU time (summed over threads) instead of wall time')
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    out = []
    for s in read_shapes(args.shapes):
        if args.only and s['name'] not in args.only.split(','):
            continue
        flops = 2.0 * s['batch'] * s['M'] * s['N'] * s['K']
        clock = time.process_time if args.cpu_time else time.perf_counter
        ms, gf = time_op(make_op(s), flops, args.reps, clock, args.best)
        out.append(dict(s, ms=round(ms, 4), gflops=round(gf, 2)))
    print(json.dumps({'library': 'torch ' + torch.__version__, 'threads': args.threads,
                      'results': out}, indent=1))


if __name__ == '__main__':
    main()
