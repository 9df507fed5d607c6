"""Chapter 7: fold the LoRA update into the base weights for serving.

Merging computes W' = W + (alpha / r) * B @ A once, so inference runs a plain
model: no adapter branches in every layer, no PEFT at serving time, and the
same latency as the base. Merge into the full-precision base: merging into a
4-bit base would round the update away.
"""
from __future__ import annotations

import time
from pathlib import Path

import torch

from helpers.paths import ADAPTER_DIR, MERGED_DIR


def merge_adapter(adapter_dir: Path = ADAPTER_DIR):
    """(merged model, tokenizer) from an adapter directory, on a float32 base."""
    from helpers.models import load_trained

    return load_trained(adapter_dir, merge=True)


def save_merged(model, tokenizer, out_dir: Path = MERGED_DIR) -> Path:
    out_dir = Path(out_dir)
    model.save_pretrained(out_dir)  # safetensors
    tokenizer.save_pretrained(out_dir)  # includes the chat template
    return out_dir


def max_logit_difference(model_a, model_b, tokenizer, texts: list[str]) -> float:
    """Largest absolute difference between two models' logits on ``texts``."""
    enc = tokenizer(texts, return_tensors="pt", padding=True)
    with torch.no_grad():
        a = model_a(**enc).logits
        b = model_b(**enc).logits
    mask = enc["attention_mask"].bool()
    return (a[mask] - b[mask]).abs().max().item()


def latency_ms(model, tokenizer, instruction: str, repeats: int = 5) -> float:
    """Median wall time of one greedy answer, in milliseconds."""
    from helpers.evaluation import generate_answers

    generate_answers(model, tokenizer, [instruction], batch_size=1, progress=False)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        generate_answers(model, tokenizer, [instruction], batch_size=1, progress=False)
        times.append((time.perf_counter() - start) * 1000)
    return sorted(times)[len(times) // 2]
