#!/usr/bin/env python3
"""NT-Xent (SimCLR) forward + backward in PyTorch eager: normalize, similarity matmul, mask the
self pair, cross-entropy against the other view, backward to z. Prints JSON. Run with /usr/bin/python3."""
import argparse
import json

import torch

from timing import time_calls
import torch.nn.functional as F


def nt_xent(z, temperature):
    n2 = z.shape[0]
    zn = F.normalize(z, dim=1)
    sim = zn @ zn.t() / temperature
    sim = sim.masked_fill(torch.eye(n2, dtype=torch.bool, device=z.device), float('-inf'))
    half = n2 // 2
    target = torch.cat([torch.arange(half, n2), torch.arange(0, half)]).to(z.device)
    return F.cross_entropy(sim, target)


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--reps', type=int, default=7)
    p.add_argument('--shapes', default='512x128,2048x256')
    p.add_argument('--device', default='cpu')
    args = p.parse_args()
    sync = torch.cuda.synchronize if args.device == 'cuda' else None
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    results = []
    for shape in args.shapes.split(','):
        n, d = (int(v) for v in shape.split('x'))
        z = torch.randn(2 * n, d, device=args.device, requires_grad=True)

        def step():
            loss = nt_xent(z, 0.1)
            loss.backward()
            z.grad = None

        ms, min_ms = time_calls(step, args.reps, sync=sync)
        results.append({'name': f'ntxent N={n} D={d}', 'ms': ms, 'min_ms': min_ms})
    print(json.dumps({'library': 'torch ' + torch.__version__ + (' on ' + torch.cuda.get_device_name(0) if args.device == 'cuda' else ''), 'threads': args.threads, 'results': results}))


if __name__ == '__main__':
    main()
