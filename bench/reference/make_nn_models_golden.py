#!/usr/bin/env python3
"""Golden reference for kiln's nn models other than GPT: MultiheadAttention (self, causal, cross,
key masks, a query-dependent mask), the fused attention op with key padding lengths,
TransformerEncoder (tokens or vectors, timestep conditioning, cond, key mask), ViT and Seq2Seq.

Each model has a PyTorch float64 twin written from kiln's source (src/nn/attention.ts, gpt.ts,
layers.ts, models.ts) with kiln's parameter names. Before anything is written, the twins are
checked against PyTorch's own modules where one exists (nn.MultiheadAttention for self and cross
attention with key padding / attention masks, nn.TransformerEncoderLayer(norm_first=True) for
ViT's block, Conv2d for ViT's patch embedding), so the fixture also pins kiln to those
conventions. Writes weights, inputs, outputs, the loss, every parameter gradient and the float
inputs' gradients to test/fixtures/nn_models_golden.json; tensors are base64 little-endian
float32 (weights and float inputs are rounded to float32 first, so kiln starts from the same
numbers), int32 inputs plain lists.

Run: /usr/bin/python3 bench/reference/make_nn_models_golden.py
"""
import base64
import json
import math
import os

import torch
import torch.nn.functional as F

torch.set_num_threads(2)
torch.manual_seed(20261128)
dt = torch.float64
EPS = 1e-5


def f32(t):
    """Rounded to float32, held in float64."""
    return t.to(torch.float32).to(dt)


def b64(t):
    a = t.detach().to(torch.float32).contiguous().numpy().astype("<f4")
    return {"shape": list(t.shape), "data": base64.b64encode(a.tobytes()).decode()}


def ints(t):
    return {"shape": list(t.shape), "dtype": "int32", "data": t.reshape(-1).tolist()}


# ---------------------------------------------------------------------------------------------
# Parameters, in kiln's namedParameters() order.

def linear_shapes(p, fan_in, fan_out, bias=True):
    s = {p + "weight": (fan_out, fan_in)}
    if bias:
        s[p + "bias"] = (fan_out,)
    return s


def ln_shapes(p, c):
    return {p + "weight": (c,), p + "bias": (c,)}


def mha_shapes(p, c, cross=False, kv_dim=None):
    s = {}
    if cross:
        s.update(linear_shapes(p + "qProj.", c, c))
        s.update(linear_shapes(p + "kvProj.", kv_dim or c, 2 * c))
    else:
        s.update(linear_shapes(p + "cAttn.", c, 3 * c))
    s.update(linear_shapes(p + "cProj.", c, c))
    return s


def mlp_shapes(p, c):
    return {**linear_shapes(p + "cFc.", c, 4 * c), **linear_shapes(p + "cProj.", 4 * c, c)}


def block_shapes(p, c):
    return {**ln_shapes(p + "ln1.", c), **mha_shapes(p + "attn.", c), **ln_shapes(p + "ln2.", c), **mlp_shapes(p + "mlp.", c)}


def encoder_shapes(cfg, prefix=""):
    c = cfg["nEmbd"]
    s = {}
    if "vocabSize" in cfg:
        s[prefix + "wte.weight"] = (cfg["vocabSize"], c)
    else:
        s.update(linear_shapes(prefix + "readIn.", cfg["inputDim"], c))
    s[prefix + "wpe.weight"] = (cfg["maxLen"], c)
    if cfg.get("timestep"):
        s.update(mlp_shapes(prefix + "timeMlp.", c))
    for l in range(cfg["nLayer"]):
        s.update(block_shapes(f"{prefix}h.{l}.", c))
    s.update(ln_shapes(prefix + "lnF.", c))
    if "outputDim" in cfg:
        s.update(linear_shapes(prefix + "readOut.", c, cfg["outputDim"]))
    return s


def vit_shapes(cfg):
    c, p, ch = cfg["nEmbd"], cfg["patchSize"], cfg["channels"]
    n = (cfg["imageSize"] // p) ** 2
    s = {"clsToken": (1, 1, c)}
    s.update(linear_shapes("patchEmbed.", ch * p * p, c))
    s["wpe.weight"] = (n + 1, c)
    for l in range(cfg["nLayer"]):
        s.update(block_shapes(f"h.{l}.", c))
    s.update(ln_shapes("lnF.", c))
    s.update(linear_shapes("head.", c, cfg["numClasses"]))
    return s


def seq2seq_shapes(cfg):
    c = cfg["nEmbd"]
    enc = {"nLayer": cfg["nLayer"], "nEmbd": c, "maxLen": cfg["maxLen"], "vocabSize": cfg["srcVocabSize"]}
    s = encoder_shapes(enc, "encoder.")
    s["tgtEmbed.weight"] = (cfg["tgtVocabSize"], c)
    s["tgtPos.weight"] = (cfg["maxLen"], c)
    for l in range(cfg["nLayer"]):
        p = f"decoder.{l}."
        s.update(ln_shapes(p + "ln1.", c))
        s.update(mha_shapes(p + "selfAttn.", c))
        s.update(ln_shapes(p + "ln2.", c))
        s.update(mha_shapes(p + "crossAttn.", c, cross=True))
        s.update(ln_shapes(p + "ln3.", c))
        s.update(mlp_shapes(p + "mlp.", c))
    s.update(ln_shapes("lnF.", c))
    return s


def init_params(shapes):
    """Random weights large enough that attention is far from uniform (scores of order 1), layer
    norm gains away from 1 and nonzero biases, so every parameter and mask shows in the outputs."""
    P = {}
    for name, shape in shapes.items():
        short = name.rsplit(".", 2)
        if name.endswith(".bias"):
            t = 0.05 * torch.randn(shape, dtype=dt)
        elif len(shape) == 1:  # layer norm gain
            t = 1 + 0.1 * torch.randn(shape, dtype=dt)
        elif name.endswith("cAttn.weight") or name.endswith("qProj.weight") or name.endswith("kvProj.weight"):
            t = 1.5 * torch.randn(shape, dtype=dt) / math.sqrt(shape[1])
        elif name == "clsToken" or short[-2] in ("wte", "wpe", "tgtEmbed", "tgtPos"):
            t = 0.5 * torch.randn(shape, dtype=dt)
        else:
            t = torch.randn(shape, dtype=dt) / math.sqrt(shape[1])
        P[name] = f32(t).requires_grad_(True)
    return P


# ---------------------------------------------------------------------------------------------
# The twins (kiln's forward, op for op).

def layer_norm(P, p, x):
    return F.layer_norm(x, (x.shape[-1],), P[p + "weight"], P[p + "bias"], EPS)


def linear(P, p, x):
    return F.linear(x, P[p + "weight"], P.get(p + "bias"))


def attend(q, k, v, causal=False, hide=None):
    """softmax(q k^T / sqrt(D), hidden scores -inf) v; causal aligned bottom-right (kiln's fused op:
    query i sees key j iff j <= i + Tk - Tq); hide: bool, True = hidden, broadcast to the scores."""
    tq, tk = q.shape[-2], k.shape[-2]
    s = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])
    if causal:
        i = torch.arange(tq).view(tq, 1)
        j = torch.arange(tk).view(1, tk)
        s = s.masked_fill(j > i + (tk - tq), float("-inf"))
    if hide is not None:
        s = s.masked_fill(hide, float("-inf"))
    assert torch.isfinite(s).any(-1).all(), "a query row sees no key (kiln outputs 0 there, PyTorch NaN)"
    return s.softmax(-1) @ v


def mha(P, p, x, n_head, causal=False, memory=None, hide=None):
    """kiln's MultiheadAttention: packed cAttn (q, k, v in that order, each heads-major) for self
    attention; qProj and kvProj (k, then v) on the memory for cross attention; then cProj."""
    b, t, c = x.shape
    if memory is None:
        q, k, v = linear(P, p + "cAttn.", x).split(c, dim=-1)
    else:
        q = linear(P, p + "qProj.", x)
        k, v = linear(P, p + "kvProj.", memory).split(c, dim=-1)
    heads = lambda u: u.reshape(b, u.shape[1], n_head, c // n_head).transpose(1, 2)
    y = attend(heads(q), heads(k), heads(v), causal, hide)
    return linear(P, p + "cProj.", y.transpose(1, 2).reshape(b, t, c))


def mlp(P, p, x, act):
    h = linear(P, p + "cFc.", x)
    h = F.gelu(h, approximate="tanh") if act == "gelu_tanh" else F.gelu(h)
    return linear(P, p + "cProj.", h)


def block(P, p, x, n_head, causal=False, hide=None, act="gelu_tanh"):
    """Pre-LN: x + attn(ln1(x)), then + mlp(ln2(.))."""
    x = x + mha(P, p + "attn.", layer_norm(P, p + "ln1.", x), n_head, causal, hide=hide)
    return x + mlp(P, p + "mlp.", layer_norm(P, p + "ln2.", x), act)


def timestep_embedding(t, dim, max_period=10000.0):
    """kiln's: [sin(t f), cos(t f)] (sin half first), f_i = exp(-ln(max_period) i / half)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=dt) / half)
    args = t.to(dt).view(-1, 1) * freqs.view(1, half)
    e = torch.cat([torch.sin(args), torch.cos(args)], dim=1)
    return torch.cat([e, torch.zeros(t.shape[0], 1, dtype=dt)], 1) if dim % 2 else e


def encoder(P, cfg, x, t=None, cond=None, hide=None, prefix=""):
    c = cfg["nEmbd"]
    h = P[prefix + "wte.weight"][x] if "vocabSize" in cfg else linear(P, prefix + "readIn.", x)
    h = h + P[prefix + "wpe.weight"][: x.shape[1]]
    if t is not None:
        h = h + mlp(P, prefix + "timeMlp.", timestep_embedding(t, c), "gelu").unsqueeze(1)
    if cond is not None:
        h = h + cond.unsqueeze(1)
    for l in range(cfg["nLayer"]):
        h = block(P, f"{prefix}h.{l}.", h, cfg["nHead"], hide=hide)
    h = layer_norm(P, prefix + "lnF.", h)
    return linear(P, prefix + "readOut.", h) if "outputDim" in cfg else h


def patchify(cfg, img):
    """kiln's: [B, C, H, W] -> [B, N, C*P*P], patches row-major over the grid, each flattened (c, py, px)."""
    b, ch, s, _ = img.shape
    p = cfg["patchSize"]
    g = s // p
    return img.reshape(b, ch, g, p, g, p).permute(0, 2, 4, 1, 3, 5).reshape(b, g * g, ch * p * p)


def vit(P, cfg, img):
    c = cfg["nEmbd"]
    h = linear(P, "patchEmbed.", patchify(cfg, img))
    h = torch.cat([P["clsToken"].expand(img.shape[0], 1, c), h], 1) + P["wpe.weight"]
    for l in range(cfg["nLayer"]):
        h = block(P, f"h.{l}.", h, cfg["nHead"], act="gelu")
    feats = layer_norm(P, "lnF.", h)[:, 0]
    return linear(P, "head.", feats), feats


def seq2seq_encode(P, cfg, src, hide=None):
    enc = {"nLayer": cfg["nLayer"], "nHead": cfg["nHead"], "nEmbd": cfg["nEmbd"], "maxLen": cfg["maxLen"], "vocabSize": 0}
    return encoder(P, enc, src, hide=hide, prefix="encoder.")


def seq2seq_decode(P, cfg, tgt, memory, hide=None):
    n_head = cfg["nHead"]
    h = P["tgtEmbed.weight"][tgt] + P["tgtPos.weight"][: tgt.shape[1]]
    for l in range(cfg["nLayer"]):
        p = f"decoder.{l}."
        h = h + mha(P, p + "selfAttn.", layer_norm(P, p + "ln1.", h), n_head, causal=True)
        h = h + mha(P, p + "crossAttn.", layer_norm(P, p + "ln2.", h), n_head, memory=memory, hide=hide)
        h = h + mlp(P, p + "mlp.", layer_norm(P, p + "ln3.", h), "gelu_tanh")
    return layer_norm(P, "lnF.", h) @ P["tgtEmbed.weight"].t()


# ---------------------------------------------------------------------------------------------
# Cross-checks of the twins against PyTorch's own modules (conventions, not just arithmetic).

def close(a, b, what):
    err = (a - b).abs().max().item() / b.abs().max().item()
    assert err < 1e-12, f"{what}: twin differs from PyTorch's module by {err}"


def check_mha_conventions():
    c, nh, b, t, s, kv = 12, 3, 2, 5, 6, 8
    P = init_params({**mha_shapes("", c), **{"x" + k: v for k, v in mha_shapes("", c, True, kv).items()}})
    x, mem = torch.randn(b, t, c, dtype=dt), torch.randn(b, s, kv, dtype=dt)
    pad = torch.tensor([[False] * 5, [False] * 3 + [True] * 2])
    ref = torch.nn.MultiheadAttention(c, nh, bias=True, batch_first=True, dtype=dt)
    with torch.no_grad():
        ref.in_proj_weight.copy_(P["cAttn.weight"]); ref.in_proj_bias.copy_(P["cAttn.bias"])
        ref.out_proj.weight.copy_(P["cProj.weight"]); ref.out_proj.bias.copy_(P["cProj.bias"])
    causal = torch.triu(torch.ones(t, t, dtype=torch.bool), 1)  # True = not allowed
    for cz in (False, True):
        want = ref(x, x, x, key_padding_mask=pad, attn_mask=causal if cz else None, need_weights=False)[0]
        close(mha(P, "", x, nh, causal=cz, hide=pad.view(b, 1, 1, t)), want, f"self attention causal={cz}")
    ref = torch.nn.MultiheadAttention(c, nh, bias=True, batch_first=True, kdim=kv, vdim=kv, dtype=dt)
    with torch.no_grad():
        ref.q_proj_weight.copy_(P["xqProj.weight"])
        ref.k_proj_weight.copy_(P["xkvProj.weight"][:c]); ref.v_proj_weight.copy_(P["xkvProj.weight"][c:])
        ref.in_proj_bias.copy_(torch.cat([P["xqProj.bias"], P["xkvProj.bias"]]))
        ref.out_proj.weight.copy_(P["xcProj.weight"]); ref.out_proj.bias.copy_(P["xcProj.bias"])
    pad = torch.tensor([[False] * 6, [False] * 2 + [True] * 4])
    want = ref(x, mem, mem, key_padding_mask=pad, need_weights=False)[0]
    close(mha(P, "x", x, nh, memory=mem, hide=pad.view(b, 1, 1, s)), want, "cross attention")


def check_vit_conventions(cfg):
    P = init_params(vit_shapes(cfg))
    c, p, ch = cfg["nEmbd"], cfg["patchSize"], cfg["channels"]
    img = torch.randn(2, ch, cfg["imageSize"], cfg["imageSize"], dtype=dt)
    # Patch embedding as a strided Conv2d whose kernel is patchEmbed.weight viewed [E, C, P, P];
    # its output [B, E, g, g] flattened row-major over the grid (timm / the ViT paper).
    conv = F.conv2d(img, P["patchEmbed.weight"].view(c, ch, p, p), P["patchEmbed.bias"], stride=p)
    close(linear(P, "patchEmbed.", patchify(cfg, img)), conv.flatten(2).transpose(1, 2), "ViT patch embedding vs Conv2d")
    # ViT's block: PyTorch's pre-LN encoder layer with exact GELU and a 4x MLP.
    layer = torch.nn.TransformerEncoderLayer(c, cfg["nHead"], 4 * c, dropout=0.0, activation="gelu", layer_norm_eps=EPS,
                                             batch_first=True, norm_first=True, dtype=dt)
    with torch.no_grad():
        for mine, theirs in [("ln1", "norm1"), ("ln2", "norm2"), ("mlp.cFc", "linear1"), ("mlp.cProj", "linear2"), ("attn.cProj", "self_attn.out_proj")]:
            getattr_path(layer, theirs).weight.copy_(P[f"h.0.{mine}.weight"])
            getattr_path(layer, theirs).bias.copy_(P[f"h.0.{mine}.bias"])
        layer.self_attn.in_proj_weight.copy_(P["h.0.attn.cAttn.weight"])
        layer.self_attn.in_proj_bias.copy_(P["h.0.attn.cAttn.bias"])
    x = torch.randn(2, 7, c, dtype=dt)
    close(block(P, "h.0.", x, cfg["nHead"], act="gelu"), layer(x), "ViT block vs TransformerEncoderLayer(norm_first=True)")


def getattr_path(m, path):
    for part in path.split("."):
        m = getattr(m, part)
    return m


# ---------------------------------------------------------------------------------------------
# Cases.

def key_mask(lengths, t, dtype=torch.int32):
    """[B, 1, 1, T], nonzero = hidden (kiln's polarity): keys at or past each length."""
    hide = torch.arange(t).view(1, t) >= torch.tensor(lengths).view(-1, 1)
    return hide.to(dtype).view(len(lengths), 1, 1, t)


def run_case(kind, cfg, P, inputs, forward, loss_fn, float_inputs):
    """forward(P, inputs) -> dict of outputs; loss_fn(outputs) -> scalar. Gradients of the loss
    with respect to every parameter and every float input named in float_inputs."""
    for n in float_inputs:
        inputs[n].requires_grad_(True)
    outs = forward(P, inputs)
    loss = loss_fn(outs)
    loss.backward()
    enc = lambda t: ints(t) if t.dtype in (torch.int32, torch.int64, torch.bool) else b64(t)
    return {
        "kind": kind,
        "config": cfg,
        "weights": {n: b64(p) for n, p in P.items()},
        "inputs": {n: enc(t) for n, t in inputs.items()},
        "outputs": {n: b64(t) for n, t in outs.items()},
        "loss": loss.item(),
        "grads": {n: b64(p.grad) for n, p in P.items()},
        "inputGrads": {n: b64(inputs[n].grad) for n in float_inputs},
    }


def probe_loss(out_name, probe):
    """sum(out * probe): a fixed random upstream gradient, different at every element."""
    return lambda outs: (outs[out_name] * probe).sum()


def mha_case(c, nh, b, t, causal=False, cross=None, mask=None):
    kv_dim, s = cross if cross else (None, None)
    P = init_params(mha_shapes("", c, cross is not None, kv_dim))
    inputs = {"x": f32(torch.randn(b, t, c, dtype=dt))}
    if cross:
        inputs["memory"] = f32(torch.randn(b, s, kv_dim, dtype=dt))
    if mask is not None:
        inputs["mask"] = mask
    probe = f32(torch.randn(b, t, c, dtype=dt))
    inputs["probe"] = probe

    def fwd(P, I):
        hide = I["mask"] != 0 if "mask" in I else None
        return {"y": mha(P, "", I["x"], nh, causal=causal, memory=I.get("memory"), hide=hide)}

    cfg = {"nEmbd": c, "nHead": nh, "causal": causal}
    if cross:
        cfg.update({"cross": True, "kvDim": kv_dim})
    return run_case("mha", cfg, P, inputs, fwd, probe_loss("y", probe), ["x"] + (["memory"] if cross else []))


def sdpa_case():
    """The fused op itself with key padding lengths, causal bottom-right, Tq < Tk."""
    b, h, tq, tk, d = 2, 2, 3, 5, 4
    inputs = {n: f32(torch.randn(b, h, tt, d, dtype=dt)) for n, tt in (("q", tq), ("k", tk), ("v", tk))}
    inputs["lengths"] = torch.tensor([5, 3], dtype=torch.int32)
    probe = f32(torch.randn(b, h, tq, d, dtype=dt))
    inputs["probe"] = probe

    def fwd(P, I):
        hide = (torch.arange(tk).view(1, tk) >= I["lengths"].view(-1, 1).long()).view(b, 1, 1, tk)
        return {"y": attend(I["q"], I["k"], I["v"], causal=True, hide=hide)}

    return run_case("sdpa", {"causal": True}, {}, inputs, fwd, probe_loss("y", probe), ["q", "k", "v"])


def encoder_tokens_case():
    cfg = {"nLayer": 2, "nHead": 3, "nEmbd": 12, "maxLen": 8, "vocabSize": 10, "timestep": True}
    b, t = 3, 6
    P = init_params(encoder_shapes(cfg))
    inputs = {
        "x": torch.randint(0, cfg["vocabSize"], (b, t), dtype=torch.int32),
        "t": f32(torch.tensor([0.5, 7.0, 123.25], dtype=dt)),
        "cond": f32(0.5 * torch.randn(b, cfg["nEmbd"], dtype=dt)),
        "mask": key_mask([6, 4, 5], t),
    }
    probe = f32(torch.randn(b, t, cfg["nEmbd"], dtype=dt))
    inputs["probe"] = probe
    fwd = lambda P, I: {"y": encoder(P, cfg, I["x"].long(), t=I["t"], cond=I["cond"], hide=I["mask"] != 0)}
    return run_case("encoder", cfg, P, inputs, fwd, probe_loss("y", probe), ["t", "cond"])


def encoder_vectors_case():
    cfg = {"nLayer": 1, "nHead": 3, "nEmbd": 12, "maxLen": 7, "inputDim": 5, "outputDim": 4, "timestep": True}
    b, t = 3, 7
    P = init_params(encoder_shapes(cfg))
    inputs = {
        "x": f32(torch.randn(b, t, cfg["inputDim"], dtype=dt)),
        "t": torch.tensor([0, 3, 999], dtype=torch.int32),  # int32 diffusion timesteps
    }
    probe = f32(torch.randn(b, t, cfg["outputDim"], dtype=dt))
    inputs["probe"] = probe
    fwd = lambda P, I: {"y": encoder(P, cfg, I["x"], t=I["t"])}
    return run_case("encoder", cfg, P, inputs, fwd, probe_loss("y", probe), ["x"])


def vit_case(cfg):
    b = 3
    P = init_params(vit_shapes(cfg))
    inputs = {
        "images": f32(torch.randn(b, cfg["channels"], cfg["imageSize"], cfg["imageSize"], dtype=dt)),
        "labels": torch.tensor([4, 0, 2], dtype=torch.int32),
    }

    def fwd(P, I):
        logits, feats = vit(P, cfg, I["images"])
        return {"logits": logits, "features": feats}

    return run_case("vit", cfg, P, inputs, fwd, lambda o: F.cross_entropy(o["logits"], inputs["labels"].long()), ["images"])


def seq2seq_case():
    cfg = {"srcVocabSize": 11, "tgtVocabSize": 13, "nLayer": 2, "nHead": 2, "nEmbd": 8, "maxLen": 8}
    b, s, t = 3, 7, 5
    P = init_params(seq2seq_shapes(cfg))
    targets = torch.randint(0, cfg["tgtVocabSize"], (b, t), dtype=torch.int32)
    targets[1, 3:] = -100  # a shorter target: ignored positions
    inputs = {
        "src": torch.randint(0, cfg["srcVocabSize"], (b, s), dtype=torch.int32),
        "tgt": torch.randint(0, cfg["tgtVocabSize"], (b, t), dtype=torch.int32),
        "srcMask": key_mask([7, 4, 6], s),
        "targets": targets,
    }

    def fwd(P, I):
        hide = I["srcMask"] != 0
        memory = seq2seq_encode(P, cfg, I["src"].long(), hide)
        out = {"memory": memory, "logits": seq2seq_decode(P, cfg, I["tgt"].long(), memory, hide)}
        with torch.no_grad():  # forward(src, tgt): no masks
            out["logitsUnmasked"] = seq2seq_decode(P, cfg, I["tgt"].long(), seq2seq_encode(P, cfg, I["src"].long()))
        return out

    loss = lambda o: F.cross_entropy(o["logits"].reshape(-1, cfg["tgtVocabSize"]), targets.reshape(-1).long())
    return run_case("seq2seq", cfg, P, inputs, fwd, loss, [])


def main():
    vit_cfg = {"imageSize": 6, "patchSize": 2, "channels": 3, "numClasses": 5, "nLayer": 2, "nHead": 3, "nEmbd": 12}
    check_mha_conventions()
    check_vit_conventions(vit_cfg)
    c, nh, b, t = 12, 3, 3, 5
    # A query-dependent mask (not per key): the composed path. Every query keeps its own key.
    qmask = (torch.rand(b, 1, t, t) < 0.4) & ~torch.eye(t, dtype=torch.bool)
    cases = {
        "mhaSelfKeyMask": mha_case(c, nh, b, t, mask=key_mask([5, 3, 4], t)),
        "mhaCausalKeyMask": mha_case(c, nh, b, t, causal=True, mask=key_mask([5, 2, 4], t)),
        "mhaCrossFloatMask": mha_case(c, nh, b, 4, cross=(8, 6), mask=key_mask([6, 2, 5], 6, torch.float32)),
        "mhaCausalQueryMask": mha_case(c, nh, b, t, causal=True, mask=qmask.to(torch.int32)),
        "sdpaLengthsCausal": sdpa_case(),
        "encoderTokens": encoder_tokens_case(),
        "encoderVectors": encoder_vectors_case(),
        "vit": vit_case(vit_cfg),
        "seq2seq": seq2seq_case(),
    }
    for case in cases.values():  # float masks go out as base64 float32 like every float tensor
        for n, v in case["inputs"].items():
            v.setdefault("dtype", "float32")
    out = {
        "about": "kiln nn models golden reference from bench/reference/make_nn_models_golden.py (PyTorch %s, float64)"
                 % torch.__version__,
        "cases": cases,
    }
    path = os.path.join(os.path.dirname(__file__), "..", "..", "test", "fixtures", "nn_models_golden.json")
    with open(path, "w") as f:
        json.dump(out, f)
    print("wrote", os.path.normpath(path), os.path.getsize(path), "bytes")
    for n, cs in cases.items():
        print(f"  {n}: loss {cs['loss']:.6f}, {len(cs['grads'])} parameters")


if __name__ == "__main__":
    main()
