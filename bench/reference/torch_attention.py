#!/usr/bin/env python3
"""PyTorch reference timings for `kiln bench attention` (float32, CPU, forward + backward).

For each (B, H, T, D) case it times two PyTorch 1.13 formulations and reports both:
  explicit: softmax(q k^T * scale + causal mask) v with autograd;
  private:  torch.nn.functional._scaled_dot_product_attention (1.13's private fused entry point).
Options: --threads N (default 2), --reps R (median of R timed repeats, default 7), --cases B,H,T,D;...,
--causal 0|1 (default 1). Prints one JSON object: {"library", "threads", "results": [...]}.
--device cuda [--dtype bf16|f16|f32]: times torch.nn.functional.scaled_dot_product_attention with its
default backend selection on the GPU instead (torch 2.x), synchronising around each measured span:
forward + backward (ms) and, with --fwd 1, the forward alone under no_grad (fwd_ms); with --backends 1
also forward + backward with each backend forced (torch.nn.attention.sdpa_kernel: flash, cudnn,
efficient; a backend that refuses the case is left out), so a reader can tell which one the default
selection ran.
"""
import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F

from timing import time_calls


def explicit(q, k, v, causal, scale):
    s = torch.matmul(q, k.transpose(-2, -1)) * scale
    if causal:
        t = q.shape[-2]
        mask = torch.ones(t, t, dtype=torch.bool).triu(1)
        s = s.masked_fill(mask, float('-inf'))
    return torch.matmul(torch.softmax(s, dim=-1), v)


def private(q, k, v, causal, scale):
    # 1.13 scales by 1/sqrt(D) itself; the benchmark uses that scale on both sides.
    out = F._scaled_dot_product_attention(q, k, v, None, 0.0, False, causal)
    return out[0] if isinstance(out, tuple) else out


def time_step(fn, reps):
    fn()
    t0 = time.perf_counter(); fn(); one = max(time.perf_counter() - t0, 1e-6)
    inner = max(1, min(1000, int(0.1 / one)))
    for _ in range(inner):
        fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        times.append((time.perf_counter() - t0) / inner)
    return statistics.median(times) * 1e3


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--reps', type=int, default=7)
    p.add_argument('--cases', default='8,4,64,32;16,8,128,64;4,8,512,64')
    p.add_argument('--causal', type=int, default=1)
    p.add_argument('--device', default='cpu')
    p.add_argument('--dtype', default='f32')
    p.add_argument('--fwd', type=int, default=0)
    p.add_argument('--backends', type=int, default=0)
    args = p.parse_args()
    if args.device == 'cuda':
        return main_cuda(args)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    causal = bool(args.causal)
    results = []
    for spec in args.cases.split(';'):
        b, h, t, d = (int(x) for x in spec.split(','))
        q, k, v = (torch.randn(b, h, t, d, requires_grad=True) for _ in range(3))
        g = torch.randn(b, h, t, d)
        scale = d ** -0.5
        row = dict(B=b, H=h, T=t, D=d)
        for name, f in (('explicit', explicit), ('private', private)):
            if name == 'private' and not hasattr(F, '_scaled_dot_product_attention'):
                continue

            def step():
                for x in (q, k, v):
                    x.grad = None
                f(q, k, v, causal, scale).backward(g)
            try:
                row[name + '_ms'] = round(time_step(step, args.reps), 4)
            except Exception as e:  # noqa: BLE001 - report, do not fail the whole run
                row[name + '_error'] = str(e).split('\n')[0]
        cands = [(row[n + '_ms'], n) for n in ('explicit', 'private') if n + '_ms' in row]
        row['ms'], row['best'] = min(cands)
        results.append(row)
    print(json.dumps({'library': 'torch ' + torch.__version__, 'threads': args.threads, 'results': results}, indent=1))


def backend_times(step, reps):
    """Forward + backward ms with each SDPA backend forced; {} where torch has no sdpa_kernel."""
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel
    except ImportError:
        return {}
    out = {}
    for name in ('FLASH_ATTENTION', 'CUDNN_ATTENTION', 'EFFICIENT_ATTENTION'):
        backend = getattr(SDPBackend, name, None)
        if backend is None:
            continue
        try:
            with sdpa_kernel(backend):
                out[name.split('_')[0].lower()] = round(time_calls(step, reps, sync=torch.cuda.synchronize)[0], 5)
        except Exception:  # noqa: BLE001 - a backend that does not take the case
            pass
    return out


def main_cuda(args):
    dtype = {'bf16': torch.bfloat16, 'f16': torch.float16, 'f32': torch.float32}[args.dtype]
    torch.manual_seed(0)
    results = []
    for spec in args.cases.split(';'):
        b, h, t, d = (int(x) for x in spec.split(','))
        q, k, v = (torch.randn(b, h, t, d, device='cuda', dtype=dtype, requires_grad=True) for _ in range(3))
        g = torch.randn(b, h, t, d, device='cuda', dtype=dtype)

        def step():
            for x in (q, k, v):
                x.grad = None
            F.scaled_dot_product_attention(q, k, v, is_causal=bool(args.causal)).backward(g)
        ms, best = time_calls(step, args.reps, sync=torch.cuda.synchronize)
        row = dict(B=b, H=h, T=t, D=d, ms=round(ms, 5), min_ms=round(best, 5), best='sdpa')
        if args.fwd:
            def fwd():
                with torch.no_grad():
                    F.scaled_dot_product_attention(q, k, v, is_causal=bool(args.causal))
            fms, fbest = time_calls(fwd, args.reps, sync=torch.cuda.synchronize)
            row.update(fwd_ms=round(fms, 5), fwd_min_ms=round(fbest, 5))
        if args.backends:
            row['backends'] = backend_times(step, args.reps)
        results.append(row)
        del q, k, v, g
    print(json.dumps({'library': f'torch {torch.__version__} on {torch.cuda.get_device_name(0)}', 'dtype': args.dtype,
                      'results': results}, indent=1))


if __name__ == '__main__':
    main()
