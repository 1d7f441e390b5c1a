#!/usr/bin/env python3
"""Writes test/fixtures/core_golden.json: inputs, outputs and gradients of a handful of core ops,
computed by PyTorch in float64, for test/golden.test.ts to match.

Run with the OS python that has torch:  /usr/bin/python3 bench/reference/make_core_fixtures.py
Inputs are rounded to float32 first, so kiln's float32 and float64 runs see the same values.
Each gradient is of sum(output * upstream) with a fixed, stored upstream tensor."""
import json
import os

import torch
import torch.nn.functional as F

torch.set_num_threads(2)
g = torch.Generator().manual_seed(20240601)


def randn(*shape, scale=1.0):
    return (torch.randn(*shape, generator=g, dtype=torch.float64) * scale).float().double()


def enc(t):
    t = t.detach()
    if t.dtype in (torch.int64, torch.int32):
        return {"shape": list(t.shape), "dtype": "int32", "data": [int(v) for v in t.flatten().tolist()]}
    return {"shape": list(t.shape), "dtype": "float64", "data": [float(v) for v in t.flatten().tolist()]}


def case(fn, inputs, ints=None, upstream=True):
    """Runs fn(**inputs, **ints); returns inputs, output, upstream and input gradients."""
    ints = ints or {}
    leaves = {k: v.clone().requires_grad_(True) for k, v in inputs.items()}
    out = fn(**leaves, **ints)
    up = randn(*out.shape).abs() + 0.5 if upstream and out.dim() > 0 else torch.ones_like(out)
    (out * up).sum().backward()
    return {
        "inputs": {**{k: enc(v) for k, v in inputs.items()}, **{k: enc(v) for k, v in ints.items()}},
        "output": enc(out),
        "upstream": enc(up),
        "grads": {k: enc(v.grad) for k, v in leaves.items()},
    }


cases = {}
cases["matmul"] = case(lambda a, b: a @ b, {"a": randn(4, 7), "b": randn(7, 3)})
cases["matmul_batched"] = case(lambda a, b: a @ b, {"a": randn(2, 3, 5), "b": randn(5, 4)})
cases["layer_norm"] = case(
    lambda x, w, b: F.layer_norm(x, (6,), w, b, eps=1e-5),
    {"x": randn(3, 6, scale=2.0), "w": randn(6), "b": randn(6)},
)
targets = torch.tensor([0, 4, -100, 2, 1, 3, -100, 0], dtype=torch.int64)
cases["cross_entropy_ignore"] = case(
    lambda logits, targets: F.cross_entropy(logits, targets, ignore_index=-100),
    {"logits": randn(8, 5, scale=2.0)},
    {"targets": targets},
)
cases["cross_entropy_smoothing_sum"] = case(
    lambda logits, targets: F.cross_entropy(logits, targets, ignore_index=-100, label_smoothing=0.1, reduction="sum"),
    {"logits": randn(8, 5, scale=2.0)},
    {"targets": targets},
)
cases["softmax"] = case(lambda x: F.softmax(x, dim=-1), {"x": randn(3, 5, scale=2.0)})
cases["log_softmax_dim0"] = case(lambda x: F.log_softmax(x, dim=0), {"x": randn(4, 3, scale=2.0)})
cases["gelu_exact"] = case(lambda x: F.gelu(x), {"x": randn(24, scale=2.0)})
cases["gelu_tanh"] = case(lambda x: F.gelu(x, approximate="tanh"), {"x": randn(24, scale=2.0)})
cases["logsumexp"] = case(lambda x: torch.logsumexp(x, dim=1), {"x": randn(3, 6, scale=3.0)})


def mlp(x, w1, b1, w2, b2, y):
    h = F.gelu(x @ w1 + b1, approximate="tanh")
    return F.cross_entropy(h @ w2 + b2, y)


cases["mlp_loss"] = case(
    mlp,
    {"x": randn(8, 6), "w1": randn(6, 16, scale=0.4), "b1": randn(16, scale=0.1), "w2": randn(16, 4, scale=0.25), "b2": randn(4, scale=0.1)},
    {"y": torch.randint(0, 4, (8,), generator=g)},
)

doc = {
    "generator": "bench/reference/make_core_fixtures.py",
    "torch": torch.__version__,
    "dtype": "float64 (inputs rounded to float32)",
    "cases": cases,
}
here = os.path.dirname(os.path.abspath(__file__))
path = os.path.join(here, "..", "..", "test", "fixtures", "core_golden.json")
with open(path, "w") as f:
    json.dump(doc, f, separators=(",", ":"))
    f.write("\n")
print(f"wrote {os.path.normpath(path)} ({os.path.getsize(path)} bytes, {len(cases)} cases)")
