#!/usr/bin/env python3
"""PyTorch reference timings for the shapes in bench/gemm_shapes.txt (float32, CPU).

Run with the system interpreter that has torch: /usr/bin/python3 bench/reference/torch_gemm.py
Options: --threads N (default 2), --reps R (median of R timed repeats, default 7), --shapes FILE,
--only a,b (shape names), --best (fastest repeat), --cpu-time (process CPU time, for a busy machine).
Prints one JSON object: {"threads": N, "results": [{"name", "ms", "gflops", ...}, ...]}.

--device cuda --cases 'DT,M,N,K[,LAYOUT];...': torch.mm on the GPU, DT one of f32 (full float32,
allow_tf32 off), tf32 (allow_tf32 on), bf16, f16, f64; LAYOUT NN (default), NT, TN or TT (T: that
operand is a transposed view). Timed with torch.cuda.synchronize around calibrated loops (timing.py).
Prints {"library", "device", "results": [{"case", "ms", "min_ms", "tflops"}, ...]} in case order.
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


CUDA_DTYPES = {'f32': (torch.float32, False), 'tf32': (torch.float32, True), 'bf16': (torch.bfloat16, False),
               'f16': (torch.float16, False), 'f64': (torch.float64, False)}


def main_cuda(args):
    from timing import time_calls
    out = []
    for spec in args.cases.split(';'):
        f = spec.split(',')
        dt, allow_tf32 = CUDA_DTYPES[f[0]]
        m, n, k = int(f[1]), int(f[2]), int(f[3])
        layout = f[4] if len(f) > 4 else 'NN'
        torch.backends.cuda.matmul.allow_tf32 = allow_tf32
        a = torch.randn((k, m) if layout[0] == 'T' else (m, k), device='cuda', dtype=dt)
        b = torch.randn((n, k) if layout[1] == 'T' else (k, n), device='cuda', dtype=dt)
        a = a.t() if layout[0] == 'T' else a
        b = b.t() if layout[1] == 'T' else b
        ms, best = time_calls(lambda: torch.mm(a, b), args.reps, sync=torch.cuda.synchronize)
        out.append(dict(case=spec, ms=round(ms, 5), min_ms=round(best, 5), tflops=round(2.0 * m * n * k / (ms * 1e9), 2)))
    torch.backends.cuda.matmul.allow_tf32 = False
    print(json.dumps({'library': 'torch ' + torch.__version__, 'device': torch.cuda.get_device_name(0),
                      'results': out}, indent=1))


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--reps', type=int, default=7)
    p.add_argument('--shapes', default=os.path.join(HERE, '..', 'gemm_shapes.txt'))
    p.add_argument('--only', default=None, help='comma-separated shape names')
    p.add_argument('--best', action='store_true', help='fastest repeat instead of the median')
    p.add_argument('--cpu-time', action='store_true',
                   help='process CPU time (summed over threads) instead of wall time')
    p.add_argument('--device', default='cpu', choices=['cpu', 'cuda'])
    p.add_argument('--cases', default='bf16,4096,4096,4096;f32,4096,4096,4096;tf32,4096,4096,4096',
                   help="cuda: 'DT,M,N,K[,LAYOUT];...'")
    args = p.parse_args()
    if args.device == 'cuda':
        return main_cuda(args)
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
