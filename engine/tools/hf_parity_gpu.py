#!/usr/bin/env python3
"""GPU parity of the engine with Hugging Face transformers in bf16 on the same random checkpoint.

Runs `qwen3 logits` (the engine's GPU forward: every position of a prompt) and Qwen3ForCausalLM in bfloat16
on the GPU (sdpa attention) over the same ids, and prints per-position logits rel-L2 and top-1 agreement
as JSON (one object; --out writes it too). Both sides are bf16 computations of the same function, so they
differ by rounding; transformers in float32 on the same ids is the yardstick both are measured against.

  build/qwen3 init --preset 4b --seed 1 --out /tmp/q4b
  python3 engine/tools/hf_parity_gpu.py --model /tmp/q4b --qwen3 build/qwen3 --tokens 256 --out parity.json
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
import transformers
from transformers import Qwen3ForCausalLM


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--qwen3", default="build/qwen3")
    ap.add_argument("--tokens", type=int, default=256)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out")
    ap.add_argument("--variants", help="winners.json for the engine (default: its committed one)")
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    ids = rng.integers(0, 151643, size=a.tokens).tolist()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "logits.f32")
        cmd = [a.qwen3, "logits", "--model", a.model, "--ids", ",".join(map(str, ids)), "--out", path]
        subprocess.run(cmd + (["--variants", a.variants] if a.variants else []), check=True)
        eng = np.fromfile(path, dtype=np.float32)
    def hf_logits(dtype):
        model = Qwen3ForCausalLM.from_pretrained(a.model, torch_dtype=dtype, attn_implementation="sdpa").cuda().eval()
        with torch.no_grad():
            out = model(torch.tensor([ids], device="cuda")).logits[0].float().cpu().numpy()
        del model
        torch.cuda.empty_cache()
        return out

    def rel(x, y):
        return np.linalg.norm(x - y, axis=1) / np.linalg.norm(y, axis=1)

    hf = hf_logits(torch.bfloat16)
    # float32 transformers: the common yardstick, so the engine's bf16 error can be set beside HF's own
    # (torch matmuls in true fp32: TF32 off)
    torch.backends.cuda.matmul.allow_tf32 = False
    hf32 = hf_logits(torch.float32)
    eng = eng.reshape(hf.shape)
    err = rel(eng, hf)
    err_eng32, err_hf32 = rel(eng, hf32), rel(hf, hf32)
    top_e, top_h = eng.argmax(1), hf.argmax(1)
    agree = float((top_e == top_h).mean())
    # where the top-1 differ, how close the two candidates are in HF's own logits
    gaps = [float(abs(hf[t, top_e[t]] - hf[t, top_h[t]]) / hf[t].std()) for t in np.nonzero(top_e != top_h)[0]]
    res = {
        "model": os.path.basename(os.path.normpath(a.model)),
        "tokens": a.tokens,
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name(),
        "rel_l2_median": float(np.median(err)),
        "rel_l2_max": float(err.max()),
        "top1_agreement": agree,
        "engine_vs_hf_fp32_rel_l2_median": float(np.median(err_eng32)),
        "hf_bf16_vs_hf_fp32_rel_l2_median": float(np.median(err_hf32)),
        "engine_top1_vs_fp32": float((top_e == hf32.argmax(1)).mean()),
        "hf_bf16_top1_vs_fp32": float((top_h == hf32.argmax(1)).mean()),
        "disagreements": len(gaps),
        "disagreement_gap_over_sd_max": max(gaps) if gaps else 0.0,
    }
    print(json.dumps(res, indent=1))
    if a.out:
        with open(a.out, "w") as f:
            json.dump(res, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    sys.exit(main())
