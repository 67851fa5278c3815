#!/usr/bin/env python3
"""Parity goldens from Hugging Face transformers for the engine's CPU reference forward pass.

Loads a folder written by `qwen3 init`, runs Qwen3ForCausalLM in float32 (eager attention) on the given
prompt ids, greedily extends it by --new-tokens tokens, and writes one compact binary golden file that
tests/test_engine_parity.c reads (it regenerates the same weights from --preset/--seed/--layers):

  "QW3GOLD1"                      8 bytes magic
  u32 n                           length of the JSON header
  JSON header (n bytes)           preset, seed, layers, n_prompt, n_ids, vocab, n_cols, full_positions,
                                  versions, min top-1/top-2 margin
  i32 ids[n_ids]                  prompt followed by the greedy continuation
  i32 hf_argmax[n_ids]            full-vocabulary argmax of the logits at every position
  i32 cols[n_cols]                logit columns kept for every position (stride sample + each row's top 8)
  f32 logits_cols[n_ids][n_cols]  float32 logits at those columns
  f32 logits_full[n_full][vocab]  complete logits rows at full_positions (true full-vocabulary check)
All little-endian. Logits row t is the prediction after ids[0..t].

Example (docs/engine.md has the exact commands used for the committed goldens):
  build/qwen3 init --preset tiny --seed 1234 --out /tmp/tiny
  python3 engine/tools/hf_golden.py --model /tmp/tiny --preset tiny --seed 1234 \
      --prompt-ids 151644,872,198,9707,11,1246,525,498,30,151645,198,151644,77091,198 \
      --new-tokens 10 --out tests/data/engine/golden_tiny.bin
"""
import argparse
import json
import struct
import sys

import numpy as np
import torch
import transformers
from transformers import Qwen3ForCausalLM


def parse_ids(text):
    ids = [int(x) for x in text.replace(" ", ",").split(",") if x]
    if not ids:
        raise SystemExit("--prompt-ids: no ids")
    return ids


@torch.no_grad()
def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="folder written by qwen3 init")
    ap.add_argument("--preset", required=True, help="the preset the folder was written with (recorded)")
    ap.add_argument("--seed", type=int, required=True, help="the seed it was written with (recorded)")
    ap.add_argument("--layers", type=int, default=0, help="the --layers override it was written with (0: none)")
    ap.add_argument("--prompt-ids", required=True, help="comma-separated prompt token ids")
    ap.add_argument("--new-tokens", type=int, default=8, help="greedy continuation length")
    ap.add_argument("--col-stride", type=int, default=97, help="keep every k-th logit column")
    ap.add_argument("--full-positions", default="last-prompt",
                    help="positions whose complete logit rows are stored: comma list, or last-prompt")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()

    torch.manual_seed(0)
    model = Qwen3ForCausalLM.from_pretrained(a.model, dtype=torch.float32, attn_implementation="eager")
    model.eval()
    prompt = parse_ids(a.prompt_ids)
    ids = list(prompt)
    for _ in range(a.new_tokens):  # greedy, one full forward per step: simple and exact
        logits = model(torch.tensor([ids])).logits[0, -1]
        ids.append(int(torch.argmax(logits)))
    ids = ids[: len(prompt) + a.new_tokens]
    # Logits of every position of prompt + continuation (the last continuation token is fed too, so the
    # C side checks the decode step that consumes it).
    logits = model(torch.tensor([ids])).logits[0].float().numpy()  # [n_ids, vocab]
    n_ids, vocab = logits.shape
    hf_argmax = logits.argmax(axis=1).astype(np.int32)
    for t in range(len(prompt) - 1, n_ids - 1):
        assert hf_argmax[t] == ids[t + 1], "greedy loop and full forward disagree"
    top2 = np.sort(logits, axis=1)[:, -2:]
    margin = float((top2[:, 1] - top2[:, 0]).min())
    cols = set(range(0, vocab, a.col_stride))
    for t in range(n_ids):
        cols.update(int(c) for c in np.argsort(logits[t])[-8:])
    cols = np.array(sorted(cols), dtype=np.int32)
    if a.full_positions == "last-prompt":
        full = [len(prompt) - 1]
    else:
        full = [int(x) for x in a.full_positions.split(",") if x]
    header = {
        "preset": a.preset, "seed": a.seed, "layers": a.layers, "n_prompt": len(prompt), "n_ids": n_ids,
        "vocab": vocab, "n_cols": int(cols.size), "full_positions": full, "min_top2_margin": margin,
        "transformers": transformers.__version__, "torch": torch.__version__, "dtype": "float32",
        "attn_implementation": "eager",
    }
    hj = json.dumps(header).encode()
    with open(a.out, "wb") as f:
        f.write(b"QW3GOLD1")
        f.write(struct.pack("<I", len(hj)))
        f.write(hj)
        f.write(np.asarray(ids, dtype="<i4").tobytes())
        f.write(hf_argmax.astype("<i4").tobytes())
        f.write(cols.astype("<i4").tobytes())
        f.write(logits[:, cols].astype("<f4").tobytes())
        for p in full:
            f.write(logits[p].astype("<f4").tobytes())
    print(f"wrote {a.out}: {n_ids} positions ({len(prompt)} prompt), {cols.size} columns, full rows at {full}, "
          f"min top-2 margin {margin:.4g}; continuation {ids[len(prompt):]}", file=sys.stderr)


if __name__ == "__main__":
    main()
