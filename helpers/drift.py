"""Chapter 5: a label-free measure of how far fine-tuning moved the model.

Benchmarks need answer keys and say "right or wrong". The drift measure needs
neither: run the base and the tuned model over the same general-purpose text
and compare, token by token, the probability distributions each gives for the
next token. The mean Kullback-Leibler divergence KL(base || tuned) is 0 for an
unchanged model and grows as the tuned model's beliefs about ordinary text move
away from the base's, which is forgetting seen before it shows in a score.

The prompts are the general probe's questions (``data/benchmarks/``), so the
text is general knowledge, not ICD-10 complaints.
"""
from __future__ import annotations

import torch

from helpers.jsonl import read_jsonl
from helpers.paths import PROBE_DATASET


def general_prompts(limit: int | None = None) -> list[str]:
    """Question and choices of each probe item, as plain text."""
    items = read_jsonl(PROBE_DATASET)
    texts = [f"Question: {it['question']}\nChoices: {', '.join(it['choices'])}" for it in items]
    return texts[:limit] if limit else texts


@torch.no_grad()
def mean_kl(base, tuned, tokenizer, prompts: list[str], batch_size: int = 16) -> float:
    """Mean over every real (non-padding) token position of KL(base || tuned), in nats."""
    total, count = 0.0, 0
    for start in range(0, len(prompts), batch_size):
        enc = tokenizer(prompts[start:start + batch_size], return_tensors="pt", padding=True)
        enc = enc.to(base.device)
        log_p = torch.log_softmax(base(**enc).logits.float(), dim=-1)
        log_q = torch.log_softmax(tuned(**enc.to(tuned.device)).logits.float().to(log_p.device), dim=-1)
        kl = (log_p.exp() * (log_p - log_q)).sum(-1)  # per position
        mask = enc["attention_mask"].to(kl.device).bool()
        total += kl[mask].sum().item()
        count += int(mask.sum())
    return total / count if count else 0.0


def adapter_drift(peft_model, tokenizer, prompts: list[str], batch_size: int = 16) -> float:
    """``mean_kl`` for a PEFT model against its own base (the adapter switched off), in one copy of the weights."""

    class AdapterOff:
        device = peft_model.device

        def __call__(self, **kwargs):
            with peft_model.disable_adapter():
                return peft_model(**kwargs)

    return mean_kl(AdapterOff(), peft_model, tokenizer, prompts, batch_size)
