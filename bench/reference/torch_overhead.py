#!/usr/bin/env python3
"""PyTorch eager dispatch overhead: a 16-element float32 add per call (the result is freed by
refcounting, like kiln's add + dispose). Prints JSON. Run with /usr/bin/python3."""
import argparse
import json
import statistics
import time

import torch


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--reps', type=int, default=7)
    p.add_argument('--n', type=int, default=16)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    a, b = torch.randn(args.n), torch.randn(args.n)
    inner = 100000
    for _ in range(inner):
        a + b
    times = []
    for _ in range(args.reps):
        t0 = time.perf_counter()
        for _ in range(inner):
            a + b
        times.append((time.perf_counter() - t0) / inner)
    print(json.dumps({'library': 'torch ' + torch.__version__, 'threads': args.threads,
                      'results': [{'name': f'add{args.n}', 'ms': statistics.median(times) * 1e3,
                                   'min_ms': min(times) * 1e3}]}))


if __name__ == '__main__':
    main()
