"""Chapter 5: prompting the base model versus fine-tuning it ("when to fine-tune").

Before training anything, a team should ask whether a prompt would do. Here
the base model gets the same test rows zero-shot (the course's system prompt
only) and few-shot (k solved training examples as earlier chat turns), and we
measure what each request costs: exact match, prompt tokens per request (what
an API bills and what fills the context window), seconds per request in a batch, and the latency
of a single request.
"""
from __future__ import annotations

import time

from helpers.chat import SYSTEM_PROMPT


def few_shot_messages(instruction: str, shots: list[dict], system: str = SYSTEM_PROMPT) -> list[dict]:
    """System prompt, then each shot as a user turn and its answer, then the instruction."""
    messages = [{"role": "system", "content": system}]
    for shot in shots:
        messages += [{"role": "user", "content": shot["instruction"]},
                     {"role": "assistant", "content": shot["response"]}]
    return messages + [{"role": "user", "content": instruction}]


def pick_shots(train_rows: list[dict], k: int) -> list[dict]:
    """k training rows with k different codes, in file order (a fixed, reproducible choice)."""
    shots, seen = [], set()
    for row in train_rows:
        if row["code"] not in seen:
            shots.append(row)
            seen.add(row["code"])
        if len(shots) == k:
            break
    return shots


def prompt_tokens(tokenizer, instruction: str, shots: list[dict]) -> int:
    messages = few_shot_messages(instruction, shots)
    ids = tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=True)
    return len(ids["input_ids"] if hasattr(ids, "keys") else ids)


def run_prompting(model, tokenizer, rows: list[dict], shots: list[dict], batch_size: int = 16,
                  latency_rows: int = 8) -> dict:
    """Score one prompting set-up on ``rows``: exact match, format, prompt tokens and time per request.

    Two times, because they answer different questions: ``seconds_per_request`` is the batched run's time
    divided by its rows (the cost of scoring a file); ``latency_seconds`` is the mean time of the first
    ``latency_rows`` requests sent one at a time (what a user waiting for one answer sees).
    """
    from helpers.evaluation import generate_answers, score

    def as_prompt(instruction):
        return few_shot_messages(instruction, shots)

    instructions = [r["instruction"] for r in rows]
    start = time.perf_counter()
    answers = generate_answers(model, tokenizer, instructions, batch_size, progress=False, messages=as_prompt)
    scores = score(rows, answers, time.perf_counter() - start)
    alone = []
    for instruction in instructions[:latency_rows]:
        start = time.perf_counter()
        generate_answers(model, tokenizer, [instruction], 1, progress=False, messages=as_prompt)
        alone.append(time.perf_counter() - start)
    tokens = [prompt_tokens(tokenizer, r["instruction"], shots) for r in rows]
    return {**scores.headline(), "shots": len(shots), "prompt_tokens_per_request": sum(tokens) / len(tokens),
            "seconds_per_request": round(scores.seconds_per_row, 4),
            "latency_seconds": round(sum(alone) / len(alone), 4) if alone else None}
