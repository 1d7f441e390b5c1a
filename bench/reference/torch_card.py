#!/usr/bin/env python3
"""The GPU's measured rates, the yardsticks kiln's CUDA figures are reported against: bf16 and
TF32/fp32 matmul TFLOP/s (torch.mm, 8192^3 and 4096^3) and device copy bandwidth (GB/s, read +
write). Prints JSON."""
import json

import torch

from timing import time_calls


def main():
    sync = torch.cuda.synchronize
    res = {'device': torch.cuda.get_device_name(0), 'torch': torch.__version__,
           'sms': torch.cuda.get_device_properties(0).multi_processor_count}
    for n, dt, tf32 in ((8192, torch.bfloat16, False), (4096, torch.bfloat16, False), (4096, torch.float32, True),
                        (4096, torch.float32, False)):
        torch.backends.cuda.matmul.allow_tf32 = tf32
        a = torch.randn(n, n, device='cuda', dtype=dt)
        b = torch.randn(n, n, device='cuda', dtype=dt)
        ms, _ = time_calls(lambda: torch.mm(a, b), 5, sync=sync)
        key = f"mm_{str(dt).split('.')[-1]}{'_tf32' if tf32 else ''}_{n}"
        res[key + '_tflops'] = 2 * n ** 3 / (ms * 1e9)
    torch.backends.cuda.matmul.allow_tf32 = False
    x = torch.empty(1 << 28, device='cuda')
    y = torch.empty_like(x)
    ms, _ = time_calls(lambda: y.copy_(x), 5, sync=sync)
    res['copy_gbps'] = 2 * x.numel() * 4 / (ms * 1e6)
    print(json.dumps(res))


if __name__ == '__main__':
    main()
