#!/usr/bin/env python3
"""PyTorch twin of `kiln bench ops`: the same everyday ops, shapes and seeds-independent inputs,
forward or forward+backward (gradients set to None each call). Prints JSON."""
import argparse
import json

import torch
import torch.nn.functional as F

from timing import time_calls


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--reps', type=int, default=7)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    X = torch.randn(256, 1024)
    Xg = torch.randn(256, 1024, requires_grad=True)
    W, B = torch.ones(1024), torch.zeros(1024)
    L = torch.randn(512, 1000, requires_grad=True)
    Y = torch.randint(0, 1000, (512,))
    E = torch.randn(5000, 256, requires_grad=True)
    I = torch.randint(0, 5000, (64, 64))
    S = torch.randn(128, 1000)
    idx = torch.randint(0, 1000, (128, 200))
    C = torch.randn(8, 32, 32, 32, requires_grad=True)
    K = torch.randn(64, 32, 3, 3, requires_grad=True)

    def back(loss, *ts):
        loss.backward()
        for t in ts:
            t.grad = None

    cases = [
        ('softmax [256,1024] fwd+bwd', lambda: back((F.softmax(Xg, -1) * X).sum(), Xg)),
        ('layerNorm [256,1024] fwd+bwd', lambda: back((F.layer_norm(Xg, (1024,), W, B) * X).sum(), Xg)),
        ('gelu (erf) [256,1024] fwd+bwd', lambda: back((F.gelu(Xg) * X).sum(), Xg)),
        ('crossEntropy [512,1000] fwd+bwd', lambda: back(F.cross_entropy(L, Y), L)),
        ('embedding [5000,256] x 4096 fwd+bwd', lambda: back(F.embedding(I, E).sum(), E)),
        ('sum over the last dim [256,1024]', lambda: X.sum(1)),
        ('cumsum over the last dim [256,1024]', lambda: torch.cumsum(X, 1)),
        ('transpose().contiguous() [256,1024]', lambda: X.t().contiguous()),
        ('concat 2 x [256,1024] on dim 1', lambda: torch.cat([X, X], 1)),
        ('sort [128,1000] on the last dim', lambda: torch.sort(S, dim=-1, stable=True)),
        ('topk 10 of [128,1000]', lambda: torch.topk(S, 10)),
        ('gather [128,1000] by [128,200]', lambda: torch.gather(S, 1, idx)),
        ('conv2d (8,32,32,32) 64x3x3 pad 1 fwd+bwd', lambda: back(F.conv2d(C, K, padding=1).sum(), C, K)),
    ]
    results = []
    for name, fn in cases:
        ms, min_ms = time_calls(fn, args.reps)
        results.append({'name': name, 'ms': ms, 'min_ms': min_ms})
    print(json.dumps({'library': 'torch ' + torch.__version__, 'threads': args.threads, 'results': results}))


if __name__ == '__main__':
    main()
