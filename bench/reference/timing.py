"""Timing shared by the PyTorch reference scripts: the same protocol as kiln's bench/harness.ts
(warm up for a while, calibrate an inner loop, median and min of repeats)."""
import statistics
import time


def time_calls(step, reps, warm_s=0.2, target_s=0.1, sync=None):
    """Returns (median_ms, min_ms) per call of step(). sync (e.g. torch.cuda.synchronize) ends each
    measured span on a GPU, where work is queued."""
    sync = sync or (lambda: None)
    t0 = time.perf_counter()
    calls = 0
    while calls < 2 or time.perf_counter() - t0 < warm_s:
        step()
        calls += 1
        sync()
    one = (time.perf_counter() - t0) / calls
    inner = max(1, int(target_s / one))
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        for _ in range(inner):
            step()
        sync()
        times.append((time.perf_counter() - t0) / inner)
    return statistics.median(times) * 1e3, min(times) * 1e3
