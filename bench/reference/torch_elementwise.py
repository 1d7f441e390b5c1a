#!/usr/bin/env python3
"""PyTorch twin of `kiln bench elementwise`: add (a + b), mul by a broadcast row, gelu (tanh) and
exp on float32 tensors of N elements, plus the device's copy bandwidth (y.copy_(x), bytes read +
written) as the roofline the issue measures against. Prints JSON."""
import argparse
import json

import torch
import torch.nn.functional as F

from timing import time_calls


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--reps', type=int, default=7)
    p.add_argument('--n', type=int, default=1 << 22)
    p.add_argument('--device', default='cpu')
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    dev = args.device
    sync = torch.cuda.synchronize if dev == 'cuda' else None
    n = args.n
    cols = 1024
    a = torch.randn(n // cols, cols, device=dev)
    b = torch.randn(n // cols, cols, device=dev)
    row = torch.randn(cols, device=dev)
    out = torch.empty_like(a)
    cases = [
        ('copy', lambda: out.copy_(a), 2),
        ('add', lambda: torch.add(a, b), 3),
        ('mul broadcast row', lambda: torch.mul(a, row), 2),
        ('gelu tanh', lambda: F.gelu(a, approximate='tanh'), 2),
        ('exp', lambda: torch.exp(a), 2),
    ]
    results = []
    for name, fn, touches in cases:
        ms, min_ms = time_calls(fn, args.reps, sync=sync)
        results.append({'name': name, 'ms': ms, 'min_ms': min_ms, 'gbps': touches * 4 * n / (ms * 1e6)})
    lib = 'torch ' + torch.__version__ + (' on ' + torch.cuda.get_device_name(0) if dev == 'cuda' else '')
    print(json.dumps({'library': lib, 'threads': args.threads, 'n': n, 'results': results}))


if __name__ == '__main__':
    main()
