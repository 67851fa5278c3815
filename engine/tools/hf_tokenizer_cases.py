#!/usr/bin/env python3
"""Random tokenizer cases with Hugging Face `tokenizers` ids, for tests/data/engine/tokenizer_random_cases.jsonl.

Strings mix ASCII, whitespace of every kind (incl. U+0085, U+180E, U+2028, U+1680), combining marks,
Greek, Cyrillic, Hebrew/Arabic, Devanagari, Thai, Hangul (jamo and syllables), CJK, emoji, math
alphanumerics, variation selectors, and the Qwen special tokens. Each line: {"text": ..., "ids": [...]},
ids = encode(text, add_special_tokens=False). test_engine_tokenizer_qwen checks every line.

  python3 engine/tools/hf_tokenizer_cases.py --tokenizer ../shared/qwen_tokenizer/tokenizer.json \
      --seed 11 --count 400 --max-len 48 --out tests/data/engine/tokenizer_random_cases.jsonl
"""
import argparse
import json
import random

from tokenizers import Tokenizer

RANGES = [(0x20, 0x7e)] * 4 + [
    (0x9, 0xd), (0x30, 0x39), (0xa0, 0x17f), (0x300, 0x36f), (0x370, 0x3ff), (0x400, 0x4ff), (0x590, 0x6ff),
    (0x900, 0x97f), (0xe00, 0xe7f), (0x1100, 0x11ff), (0x2000, 0x206f), (0x3000, 0x30ff), (0x4e00, 0x9fff),
    (0xac00, 0xd7a3), (0x1f300, 0x1f6ff), (0x1d400, 0x1d7ff), (0xfe00, 0xfe0f), (0x85, 0x85), (0x2028, 0x2029),
    (0x1680, 0x1680), (0x180e, 0x180e), (0xfeff, 0xfeff)]
SPECIALS = ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<think>", "</think>", "'s", "'LL", "  ", "\r\n"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--count", type=int, default=400)
    ap.add_argument("--max-len", type=int, default=48)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    tk = Tokenizer.from_file(a.tokenizer)
    rng = random.Random(a.seed)
    with open(a.out, "w", encoding="utf-8", newline="\n") as f:
        for _ in range(a.count):
            s = []
            for _ in range(rng.randint(0, a.max_len)):
                if rng.random() < 0.05:
                    s.append(rng.choice(SPECIALS))
                    continue
                lo, hi = rng.choice(RANGES)
                c = rng.randint(lo, hi)
                if not 0xD800 <= c <= 0xDFFF:
                    s.append(chr(c))
            text = "".join(s)
            ids = tk.encode(text, add_special_tokens=False).ids
            # ensure_ascii keeps every line one physical line whatever the text holds (U+2028, NEL...)
            f.write(json.dumps({"text": text, "ids": ids}, ensure_ascii=True) + "\n")


if __name__ == "__main__":
    main()
