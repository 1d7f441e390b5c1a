#!/usr/bin/env python3
"""One DDPM reverse step in PyTorch eager, as improved-diffusion writes it: per-row coefficients
gathered by t, predicted x0 from eps, posterior mean, fresh Gaussian noise for t > 0.
Prints JSON. Run with /usr/bin/python3."""
import argparse
import json

import numpy as np
import torch

from timing import time_calls


def extract(arr, t, shape):
    out = arr[t]
    while out.dim() < len(shape):
        out = out[..., None]
    return out.expand(shape)


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--reps', type=int, default=7)
    p.add_argument('--shape', default='64x64x128')
    p.add_argument('--t', type=int, default=500)
    p.add_argument('--device', default='cpu')
    args = p.parse_args()
    dev = args.device
    sync = torch.cuda.synchronize if dev == 'cuda' else None
    torch.set_num_threads(args.threads)
    shape = tuple(int(v) for v in args.shape.split('x'))
    T = 1000
    betas = np.linspace(1e-4, 0.02, T, dtype=np.float64)
    ac = np.cumprod(1 - betas)
    acp = np.append(1.0, ac[:-1])
    post_var = betas * (1 - acp) / (1 - ac)
    tab = lambda a: torch.tensor(a, dtype=torch.float32, device=dev)
    sqrt_recip, sqrt_recipm1 = tab(np.sqrt(1 / ac)), tab(np.sqrt(1 / ac - 1))
    coef1, coef2 = tab(betas * np.sqrt(acp) / (1 - ac)), tab((1 - acp) * np.sqrt(1 - betas) / (1 - ac))
    logvar = tab(np.log(np.append(post_var[1], post_var[1:])))
    x = torch.randn(shape, device=dev)
    eps = torch.randn(shape, device=dev)
    t = torch.full((shape[0],), args.t, dtype=torch.long, device=dev)

    def step():
        with torch.no_grad():
            x0 = extract(sqrt_recip, t, x.shape) * x - extract(sqrt_recipm1, t, x.shape) * eps
            mean = extract(coef1, t, x.shape) * x0 + extract(coef2, t, x.shape) * x
            noise = torch.randn_like(x)
            nonzero = (t != 0).float().view(-1, *([1] * (x.dim() - 1)))
            return mean + nonzero * torch.exp(0.5 * extract(logvar, t, x.shape)) * noise, x0

    ms, min_ms = time_calls(step, args.reps, sync=sync)
    print(json.dumps({'library': 'torch ' + torch.__version__ + (' on ' + torch.cuda.get_device_name(0) if dev == 'cuda' else ''), 'threads': args.threads,
                      'results': [{'name': 'ddpm step ' + args.shape, 'ms': ms, 'min_ms': min_ms}]}))


if __name__ == '__main__':
    main()
