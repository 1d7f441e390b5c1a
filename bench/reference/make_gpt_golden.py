#!/usr/bin/env python3
"""Golden reference for kiln's GPT: a tiny GPT-2 (2 layers, width 32) in PyTorch, computed in
float64, with kiln's parameter names. Writes the weights, inputs, logits, loss, every gradient and
the losses of 10 AdamW steps under linear warm-up + cosine to test/fixtures/gpt_golden.json.
Tensors are stored as base64 little-endian float32 (the test compares kiln's float32 run).

Run: /usr/bin/python3 bench/reference/make_gpt_golden.py
"""
import base64
import json
import math
import os

import numpy as np
import torch
import torch.nn.functional as F

L, H, C, V, BLOCK = 2, 4, 32, 48, 16
B, T = 3, 12
STEPS, WARMUP, MIN_FACTOR = 10, 3, 0.1
LR, BETAS, EPS, WD = 1e-2, (0.9, 0.95), 1e-8, 0.1

torch.manual_seed(1234)
dt = torch.float64


def param_shapes():
    shapes = {"wte.weight": (V, C), "wpe.weight": (BLOCK, C)}
    for l in range(L):
        p = f"h.{l}."
        shapes.update({
            p + "ln1.weight": (C,), p + "ln1.bias": (C,),
            p + "attn.cAttn.weight": (3 * C, C), p + "attn.cAttn.bias": (3 * C,),
            p + "attn.cProj.weight": (C, C), p + "attn.cProj.bias": (C,),
            p + "ln2.weight": (C,), p + "ln2.bias": (C,),
            p + "mlp.cFc.weight": (4 * C, C), p + "mlp.cFc.bias": (4 * C,),
            p + "mlp.cProj.weight": (C, 4 * C), p + "mlp.cProj.bias": (C,),
        })
    shapes.update({"lnF.weight": (C,), "lnF.bias": (C,)})
    return shapes


def init_params():
    P = {}
    for name, shape in param_shapes().items():
        if name.endswith("ln1.weight") or name.endswith("ln2.weight") or name == "lnF.weight":
            t = 1 + 0.1 * torch.randn(shape, dtype=dt)  # not exactly 1, so the test sees the gains
        elif name.endswith(".bias"):
            t = 0.02 * torch.randn(shape, dtype=dt)  # nonzero biases exercise the bias gradients
        elif name.endswith("cProj.weight"):
            t = torch.randn(shape, dtype=dt) * 0.02 / math.sqrt(2 * L)
        else:
            t = torch.randn(shape, dtype=dt) * 0.02
        # Round to float32 so kiln starts from exactly the same weights.
        P[name] = t.float().double().requires_grad_(True)
    return P


def forward(P, idx):
    Bn, Tn = idx.shape
    x = P["wte.weight"][idx] + P["wpe.weight"][:Tn]
    mask = torch.triu(torch.ones(Tn, Tn, dtype=torch.bool), diagonal=1)
    for l in range(L):
        p = f"h.{l}."
        h = F.layer_norm(x, (C,), P[p + "ln1.weight"], P[p + "ln1.bias"], 1e-5)
        qkv = F.linear(h, P[p + "attn.cAttn.weight"], P[p + "attn.cAttn.bias"])
        q, k, v = qkv.split(C, dim=2)
        q, k, v = (t.view(Bn, Tn, H, C // H).transpose(1, 2) for t in (q, k, v))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(C // H)
        att = att.masked_fill(mask, float("-inf")).softmax(-1)
        y = (att @ v).transpose(1, 2).reshape(Bn, Tn, C)
        x = x + F.linear(y, P[p + "attn.cProj.weight"], P[p + "attn.cProj.bias"])
        h = F.layer_norm(x, (C,), P[p + "ln2.weight"], P[p + "ln2.bias"], 1e-5)
        h = F.gelu(F.linear(h, P[p + "mlp.cFc.weight"], P[p + "mlp.cFc.bias"]), approximate="tanh")
        x = x + F.linear(h, P[p + "mlp.cProj.weight"], P[p + "mlp.cProj.bias"])
    x = F.layer_norm(x, (C,), P["lnF.weight"], P["lnF.bias"], 1e-5)
    return x @ P["wte.weight"].t()


def lr_factor(step):
    # kiln.sched.warmupCosine(WARMUP, STEPS, MIN_FACTOR)
    if step < WARMUP:
        return min(1.0, (step + 1) / WARMUP)
    s, total = step - WARMUP, STEPS - WARMUP
    if s >= total:
        return MIN_FACTOR
    return MIN_FACTOR + (1 - MIN_FACTOR) * 0.5 * (1 + math.cos(math.pi * s / total))


def b64(t):
    return base64.b64encode(t.detach().to(torch.float32).contiguous().numpy().astype("<f4").tobytes()).decode()


def main():
    P = init_params()
    idx = torch.randint(0, V, (B, T))
    targets = torch.randint(0, V, (B, T))
    weights = {n: {"shape": list(p.shape), "data": b64(p)} for n, p in P.items()}

    logits = forward(P, idx)
    loss = F.cross_entropy(logits.view(-1, V), targets.view(-1))
    loss.backward()
    grads = {n: {"shape": list(p.shape), "data": b64(p.grad)} for n, p in P.items()}

    opt = torch.optim.AdamW(list(P.values()), lr=LR, betas=BETAS, eps=EPS, weight_decay=WD)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor)
    losses = []
    for _ in range(STEPS):
        opt.zero_grad()
        l = F.cross_entropy(forward(P, idx).view(-1, V), targets.view(-1))
        losses.append(l.item())
        l.backward()
        opt.step()
        sched.step()

    out = {
        "about": "tiny GPT-2 golden reference from bench/reference/make_gpt_golden.py (PyTorch %s, float64)" % torch.__version__,
        "config": {"nLayer": L, "nHead": H, "nEmbd": C, "vocabSize": V, "blockSize": BLOCK},
        "optim": {"lr": LR, "betas": list(BETAS), "eps": EPS, "weightDecay": WD, "steps": STEPS, "warmup": WARMUP,
                  "minFactor": MIN_FACTOR},
        "idx": idx.tolist(), "targets": targets.tolist(),
        "weights": weights,
        "logits": {"shape": list(logits.shape), "data": b64(logits)},
        "loss": loss.item(),
        "grads": grads,
        "losses": losses,
    }
    path = os.path.join(os.path.dirname(__file__), "..", "..", "test", "fixtures", "gpt_golden.json")
    with open(path, "w") as f:
        json.dump(out, f)
    print("wrote", os.path.normpath(path), "loss", loss.item(), "losses", [round(x, 5) for x in losses])


if __name__ == "__main__":
    main()
