#!/usr/bin/env python3
"""Writes test/fixtures/parity.json: what PyTorch does where kiln used to differ, for
test/parity.test.ts to match.

Run with the OS python that has torch:  /usr/bin/python3 bench/reference/make_parity_fixtures.py

- promotion: the result dtype of every binary elementwise op (and where's two values) for every pair
  of kiln dtypes and every rank combination (dimensioned / 0-d tensor / Python int / Python float),
  from running the op; where torch 1.13's CPU has no kernel for the dtype (float16 maximum, ...) or
  the op takes no scalar (maximum(t, 2)), from torch.result_type by the op's own rule (comparisons
  give bool, div of integers the default float dtype), a rule this script checks against every run
  that does work. kiln's int32 stands in for torch's int32; a Python int stays int here too.
- concat: torch.cat's result dtype for every pair of kiln dtypes.
- negzero: the sign of op(-0.0) for the unary ops where the sign of a zero can differ.
- topk: values and indices of torch.topk at k = 0, k = size and on empty tensors."""
import json
import math
import os

import torch
import torch.nn.functional as F

torch.set_num_threads(2)

DT = {"int32": torch.int32, "float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32,
      "float64": torch.float64}
NAME = {v: k for k, v in DT.items()}
NAME[torch.bool] = "int32"  # kiln's comparisons return int32 0/1

OPS = {
    "add": torch.add, "sub": torch.sub, "mul": torch.mul, "div": torch.div, "pow": torch.pow,
    "maximum": torch.maximum, "minimum": torch.minimum,
    "eq": torch.eq, "ne": torch.ne, "lt": torch.lt, "le": torch.le, "gt": torch.gt, "ge": torch.ge,
    "where": lambda a, b: torch.where(torch.tensor([True, False, True]) if _dim(a, b) else torch.tensor(True), a, b),
}
CMP = {"eq", "ne", "lt", "le", "gt", "ge"}
INT_SCALAR, FLOAT_SCALAR = 2, 2.5


def _dim(a, b):
    return any(isinstance(t, torch.Tensor) and t.dim() > 0 for t in (a, b))


def operand(kind, dtype):
    if kind == "int":
        return INT_SCALAR
    if kind == "float":
        return FLOAT_SCALAR
    shape = (3,) if kind == "dim" else ()
    return torch.full(shape, 2, dtype=DT[dtype])


# Compact rows: [op, a, b, result dtype, torch.result_type, "op" | "result_type"], an operand being
# its kind (D dimensioned tensor [3], Z 0-d tensor, I the Python int 2, F the Python float 2.5)
# followed by its dtype letter (i int32, h float16, b bfloat16, f float32, d float64).
SHORT = {"int32": "i", "float16": "h", "bfloat16": "b", "float32": "f", "float64": "d"}
KIND = {"dim": "D", "zero": "Z", "int": "I", "float": "F"}


def code(kind, dtype):
    return KIND[kind] + (SHORT[dtype] if dtype else "")


def rule(op, a, b):
    r = torch.result_type(a, b)
    if op in CMP:
        return torch.bool
    if op == "div" and not r.is_floating_point:
        return torch.get_default_dtype()
    return r


promotion = []
checked = 0
kinds = [("dim", "dim"), ("dim", "zero"), ("zero", "dim"), ("zero", "zero"),
         ("dim", "int"), ("dim", "float"), ("int", "dim"), ("float", "dim"),
         ("zero", "int"), ("zero", "float"), ("int", "zero"), ("float", "zero")]
for op, fn in OPS.items():
    for ka, kb in kinds:
        for da in DT if ka in ("dim", "zero") else [None]:
            for db in DT if kb in ("dim", "zero") else [None]:
                a, b = operand(ka, da), operand(kb, db)
                expect = rule(op, a, b)
                try:
                    got = fn(a, b).dtype
                    source = "op"
                    assert got == expect, (op, ka, da, kb, db, got, expect)
                    checked += 1
                except (RuntimeError, TypeError) as e:
                    if "not implemented" not in str(e) and "argument" not in str(e) and "expected" not in str(e):
                        raise
                    got, source = expect, "result_type"
                promotion.append([op, code(ka, da), code(kb, db), SHORT[NAME[got]], SHORT[NAME[torch.result_type(a, b)]],
                                  source])

concat = []
for da in DT:
    for db in DT:
        out = torch.cat([torch.ones(2, dtype=DT[da]), torch.ones(3, dtype=DT[db])])
        st = torch.stack([torch.ones(2, dtype=DT[da]), torch.ones(2, dtype=DT[db])])
        concat.append({"a": da, "b": db, "cat": NAME[out.dtype], "stack": NAME[st.dtype]})

UNARY = {
    "relu": torch.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid, "gelu": F.gelu,
    "geluTanh": lambda t: F.gelu(t, approximate="tanh"), "abs": torch.abs, "neg": torch.neg,
    "sqrt": torch.sqrt, "sin": torch.sin,
}
negzero = []
for name, fn in UNARY.items():
    for dtype in ("float32", "float64", "bfloat16"):
        for n in (1, 64):  # 1: the scalar loop; 64: the vectorised one
            y = fn(torch.full((n,), -0.0, dtype=DT[dtype]))[0].item()
            negzero.append({"op": name, "dtype": dtype, "n": n, "value": y, "signbit": math.copysign(1.0, y) < 0})


def topk_case(shape, k, largest=True, data=None):
    x = torch.tensor(data, dtype=torch.float32).reshape(shape) if data is not None else \
        torch.arange(math.prod(shape), dtype=torch.float32).reshape(shape).remainder(5)
    try:
        v, i = torch.topk(x, k, largest=largest)
        return {"shape": list(shape), "k": k, "largest": largest, "input": x.flatten().tolist(),
                "valuesShape": list(v.shape), "values": v.flatten().tolist(), "indices": i.flatten().tolist()}
    except RuntimeError as e:
        return {"shape": list(shape), "k": k, "largest": largest, "input": x.flatten().tolist(), "error": str(e)}


topk = [
    topk_case([5], 0), topk_case([5], 5), topk_case([5], 5, largest=False), topk_case([2, 3], 0), topk_case([2, 3], 3),
    topk_case([0], 0), topk_case([0], 1), topk_case([3, 0], 0), topk_case([0, 4], 2), topk_case([0, 4], 0),
    topk_case([2, 0, 3], 0), topk_case([2, 0, 3], 3), topk_case([5], 6), topk_case([5], -1),
]

out = os.path.join(os.path.dirname(__file__), "..", "..", "test", "fixtures", "parity.json")
with open(out, "w") as f:
    json.dump({"torch": torch.__version__, "promotionLegend": "[op, a, b, dtype, torch.result_type, source]: "
               "D dimensioned [3], Z 0-d, I Python int 2, F Python float 2.5; i int32, h float16, b bfloat16, "
               "f float32, d float64", "promotion": promotion, "concat": concat, "negzero": negzero, "topk": topk}, f,
              separators=(",", ":"))
    f.write("\n")
print(f"wrote {out}: {len(promotion)} promotion cases ({checked} from running the op), {len(concat)} concat, "
      f"{len(negzero)} negzero, {len(topk)} topk")
