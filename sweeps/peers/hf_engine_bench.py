#!/usr/bin/env python3
"""Peer rows for an engine bundle: Hugging Face transformers on the same random checkpoint and cells.

bf16 on the GPU, static KV cache (transformers then compiles the decoding step with torch.compile itself;
wrapping forward in torch.compile(mode="reduce-overhead") on top of it fails on transformers 5.17 because
the cudagraph outputs are overwritten), greedy with EOS ignored (min_new_tokens = max_new_tokens). Per cell:
warm-up runs (which also compile), then timed runs with CUDA synchronisation around generate():
TTFT = generate(max_new_tokens=1), decode ms/token = (e2e(tg) - TTFT) / (tg - 1). Rows are appended
to the bundle's engine.csv with engine=transformers, so the plots show both engines side by side.

  python3 sweeps/peers/hf_engine_bench.py --model /tmp/q4b --pp 128,512 --tg 128 --csv results/engine-qwen3-4b/engine.csv
"""
import argparse
import os
import statistics
import time

import torch
from transformers import Qwen3ForCausalLM


def timed(fn, reps, warmup):
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(reps):
        torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        out.append((time.perf_counter() - t) * 1e3)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--pp", default="128,512")
    ap.add_argument("--tg", default="128")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--csv", required=True, help="engine.csv to append to (header written if new)")
    a = ap.parse_args()
    model = Qwen3ForCausalLM.from_pretrained(a.model, torch_dtype=torch.bfloat16).cuda().eval()
    model.generation_config.cache_implementation = "static"
    name = os.path.basename(os.path.normpath(a.model))
    new = not os.path.exists(a.csv)
    with open(a.csv, "a") as f:
        if new:
            f.write("engine,model,pp,tg,n,e2e_median_ms,e2e_p25_ms,e2e_p75_ms,prefill_ms,decode_ms_per_token,decode_tok_s,"
                    "weights_gb,avg_kv_gb,roofline_tok_s,pct_roofline,peak_mem_gb\n")
        for pp in [int(x) for x in a.pp.split(",")]:
            g = torch.Generator().manual_seed(pp)
            ids = torch.randint(0, 151643, (1, pp), generator=g).cuda()
            for tg in [int(x) for x in a.tg.split(",")]:
                def gen(n):
                    with torch.no_grad():
                        model.generate(ids, max_new_tokens=n, min_new_tokens=n, do_sample=False, pad_token_id=0)
                ttft = statistics.median(timed(lambda: gen(1), a.reps, a.warmup))
                e2e = timed(lambda: gen(tg), a.reps, a.warmup)
                q = statistics.quantiles(e2e, n=4) if len(e2e) > 1 else [e2e[0]] * 3
                med = statistics.median(e2e)
                dec = (med - ttft) / max(tg - 1, 1)
                peak = torch.cuda.max_memory_allocated() / 1e9
                f.write(f"transformers,{name},{pp},{tg},{a.reps},{med:.3f},{q[0]:.3f},{q[2]:.3f},{ttft:.3f},{dec:.4f},"
                        f"{1e3 / dec:.2f},,,,,{peak:.3f}\n")
                f.flush()
                print(f"transformers pp={pp} tg={tg}: e2e {med:.1f} ms, TTFT {ttft:.2f} ms, decode {1e3 / dec:.1f} tok/s", flush=True)


if __name__ == "__main__":
    main()
