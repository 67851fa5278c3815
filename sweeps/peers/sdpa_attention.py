#!/usr/bin/env python3
"""Peer baseline for attn_prefill: PyTorch scaled_dot_product_attention, causal GQA, bf16.

Each shape (T, P0, HQ, HKV, D) runs q [1, HQ, T, D] against k, v [1, HKV, P0+T, D] with query t at
position P0+t (bottom-right causal mask when P0 > 0), once per backend (cuDNN, flash) forced with
torch.nn.attention.sdpa_kernel. GQA: enable_gqa=True where the backend takes it ("native"); otherwise K/V
are expanded to HQ heads with repeat_interleave before timing ("repeat", which reads HQ/HKV times more K/V).
Timing: CUDA events around each call, warm-up first, median of --iters calls.
FLOPs use klab's count for attn_prefill: 4 * D * HQ * (T*P0 + T*(T+1)/2).

Prints CSV: backend,gqa,T,P0,HQ,HKV,D,median_ms,tflops,note
"""
import argparse
import statistics
import sys

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

DEFAULT_SHAPES = [  # (T, P0, HQ, HKV, D): attn_prefill's presets and the attention sweep's prefill range
    (512, 0, 32, 8, 128), (1024, 0, 32, 8, 128), (2048, 0, 32, 8, 128), (4096, 0, 32, 8, 128),
    (8192, 0, 32, 8, 128), (16384, 0, 32, 8, 128), (128, 1000, 32, 8, 128), (2048, 0, 40, 8, 128),
]
BACKENDS = [("cudnn", SDPBackend.CUDNN_ATTENTION), ("flash", SDPBackend.FLASH_ATTENTION)]


def flops(T, P0, HQ, D):
    return 4.0 * D * HQ * (T * P0 + T * (T + 1) / 2.0)


def parse_shapes(text):
    shapes = []
    for item in text.split(";"):
        item = item.strip()
        if item:
            T, P0, HQ, HKV, D = (int(x) for x in item.split(","))
            shapes.append((T, P0, HQ, HKV, D))
    return shapes


def make_call(q, k, v, P0, HQ, HKV, gqa):
    T, S = q.shape[2], k.shape[2]
    if P0 > 0:  # bottom-right aligned causal mask: query t sees keys 0..P0+t
        from torch.nn.attention.bias import causal_lower_right
        mask_args = {"attn_mask": causal_lower_right(T, S)}
    else:
        mask_args = {"is_causal": True}
    if gqa == "native":
        return lambda: F.scaled_dot_product_attention(q, k, v, enable_gqa=True, **mask_args)
    group = HQ // HKV
    k_full, v_full = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
    return lambda: F.scaled_dot_product_attention(q, k_full, v_full, **mask_args)


def time_call(call, warmup, iters):
    for _ in range(warmup):
        call()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        call()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shapes", help='"T,P0,HQ,HKV,D;..." (default: the presets and T = 512..16384)')
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--iters", type=int, default=50)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        sys.exit("sdpa_attention.py: no CUDA device")
    shapes = parse_shapes(args.shapes) if args.shapes else DEFAULT_SHAPES
    print("backend,gqa,T,P0,HQ,HKV,D,median_ms,tflops,note")
    for T, P0, HQ, HKV, D in shapes:
        torch.manual_seed(0)
        q = torch.randn(1, HQ, T, D, device="cuda", dtype=torch.bfloat16)
        k = torch.randn(1, HKV, P0 + T, D, device="cuda", dtype=torch.bfloat16)
        v = torch.randn(1, HKV, P0 + T, D, device="cuda", dtype=torch.bfloat16)
        for name, backend in BACKENDS:
            row = None
            for gqa in ("native", "repeat"):
                try:
                    with sdpa_kernel([backend]):
                        call = make_call(q, k, v, P0, HQ, HKV, gqa)
                        ms = time_call(call, args.warmup, args.iters)
                    row = f"{name},{gqa},{T},{P0},{HQ},{HKV},{D},{ms:.4f},{flops(T, P0, HQ, D) / (ms * 1e-3) / 1e12:.1f},"
                    break
                except (RuntimeError, TypeError, ValueError, NotImplementedError) as e:  # backend refuses this form: try the next
                    note = str(e).splitlines()[0].replace(",", ";")[:160]
            if row is None:
                row = f"{name},,{T},{P0},{HQ},{HKV},{D},,,unsupported: {note}"
            print(row, flush=True)


if __name__ == "__main__":
    main()
