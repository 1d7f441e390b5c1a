#!/usr/bin/env python3
"""PyTorch twin of bench/train-step.ts: the in-context-learning GPT-2 training step (vector read-in,
scalar read-out, MSE, Adam). Prints JSON {steps_per_s, ms_per_step}.
Usage: python3 bench/reference/torch_train_step.py [nLayer nHead nEmbd] [--threads 2] [--steps 20]"""
import argparse, json, math, time
import torch
import torch.nn as nn
import torch.nn.functional as F

ap = argparse.ArgumentParser()
ap.add_argument("--layers", type=int, default=4)
ap.add_argument("--heads", type=int, default=4)
ap.add_argument("--embd", type=int, default=128)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--steps", type=int, default=20)
ap.add_argument("--batch", type=int, default=64)
ap.add_argument("--positions", type=int, default=42)
ap.add_argument("--dim", type=int, default=10)
ap.add_argument("--device", default="cpu")
a = ap.parse_args()
dev = a.device
sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)
torch.set_num_threads(a.threads)
torch.manual_seed(0)

class Block(nn.Module):
    def __init__(s, C, H):
        super().__init__()
        s.ln1, s.ln2, s.H = nn.LayerNorm(C), nn.LayerNorm(C), H
        s.c_attn, s.c_proj = nn.Linear(C, 3 * C), nn.Linear(C, C)
        s.fc, s.proj = nn.Linear(C, 4 * C), nn.Linear(4 * C, C)
    def forward(s, x):
        B, T, C = x.shape
        q, k, v = s.c_attn(s.ln1(x)).split(C, 2)
        q, k, v = (t.view(B, T, s.H, C // s.H).transpose(1, 2) for t in (q, k, v))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(C // s.H)
        att = att.masked_fill(torch.triu(torch.ones(T, T, dtype=torch.bool, device=x.device), 1), float("-inf")).softmax(-1)
        x = x + s.c_proj((att @ v).transpose(1, 2).reshape(B, T, C))
        return x + s.proj(F.gelu(s.fc(s.ln2(x)), approximate="tanh"))

class GPT(nn.Module):
    def __init__(s):
        super().__init__()
        s.read_in, s.wpe = nn.Linear(a.dim, a.embd), nn.Embedding(a.positions, a.embd)
        s.h = nn.ModuleList([Block(a.embd, a.heads) for _ in range(a.layers)])
        s.ln_f, s.read_out = nn.LayerNorm(a.embd), nn.Linear(a.embd, 1)
    def forward(s, x):
        h = s.read_in(x) + s.wpe.weight[: x.shape[1]]
        for b in s.h:
            h = b(h)
        return s.read_out(s.ln_f(h))

m = GPT().to(dev)
opt = torch.optim.Adam(m.parameters(), lr=1e-4)
x = torch.randn(a.batch, a.positions, a.dim, device=dev)
y = torch.randn(a.batch, a.positions, 1, device=dev)
def step():
    opt.zero_grad()
    loss = F.mse_loss(m(x), y)
    loss.backward()
    opt.step()
for _ in range(3):
    step()
sync()
t0 = time.perf_counter()
for _ in range(a.steps):
    step()
sync()
dt = (time.perf_counter() - t0) / a.steps
import resource
peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
print(json.dumps({"framework": "pytorch " + torch.__version__ + (" on " + torch.cuda.get_device_name(0) if dev == "cuda" else ""), "steps_per_s": 1 / dt, "ms_per_step": dt * 1000,
                  "threads": a.threads, "peak_rss_mib": peak_mib}))
