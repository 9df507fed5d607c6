"""Chapter 5: prompting the base model versus fine-tuning it ("when to fine-tune").

Before training anything, a team should ask whether a prompt would do. Here
the base model gets the same test rows zero-shot (a one-line task prompt,
:data:`helpers.chat.TASK_PROMPT`) and few-shot (that prompt, then k solved
training examples as earlier chat turns), and we measure what each request
costs: exact match, prompt tokens per request (what an API bills and what
fills the context window), seconds per request in a batch (with the examples
computed once for the whole file), and the latency of a single request.
"""
from __future__ import annotations

import time

import torch

from helpers.chat import SYSTEM_PROMPT, TASK_PROMPT
from helpers.evaluation import ANSWER_TOKENS


def few_shot_messages(instruction: str, shots: list[dict], system: str = TASK_PROMPT) -> list[dict]:
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


def prompt_tokens(tokenizer, instruction: str, shots: list[dict], system: str = TASK_PROMPT) -> int:
    messages = few_shot_messages(instruction, shots, system)
    ids = tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=True)
    return len(ids["input_ids"] if hasattr(ids, "keys") else ids)


@torch.no_grad()
def generate_with_shared_prefix(model, tokenizer, instructions: list[str], shots: list[dict], batch_size: int = 16,
                                max_new_tokens: int = ANSWER_TOKENS, system: str = TASK_PROMPT) -> list[str]:
    """Greedy few-shot answers, with the examples every prompt starts with computed once.

    All few-shot prompts begin with the same system prompt and solved
    examples; only the last user turn differs. Their keys and values are
    computed once (a prefix cache: what serving engines and API "prompt
    caching" do) and every batch starts from a copy, so each request is
    charged only for its own turn. The answers are those of
    :func:`helpers.evaluation.generate_answers` on the full prompts
    (``tests/test_prompting.py`` checks it). Padding goes between the shared
    prefix and each row's own turn; the attention mask hides it and the
    position ids skip it.
    """
    import copy

    texts = [tokenizer.apply_chat_template(few_shot_messages(i, shots, system), tokenize=False,
                                           add_generation_prompt=True)
             for i in instructions]
    rows = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    if not rows:
        return []
    # The shared prefix in tokens, less one: every row must keep a token of its own to feed the model.
    shared = min(len(r) for r in rows) - 1
    for r in rows[1:]:
        shared = next((i for i, (a, b) in enumerate(zip(rows[0][:shared], r)) if a != b), shared)
    prefix = rows[0][:shared]
    device = model.device
    prefix_cache = model(input_ids=torch.tensor([prefix], device=device), use_cache=True).past_key_values
    pad = tokenizer.pad_token_id
    answers: list[str] = []
    for start in range(0, len(rows), batch_size):
        own = [r[shared:] for r in rows[start:start + batch_size]]
        width = max(len(o) for o in own)
        ids = [prefix + [pad] * (width - len(o)) + o for o in own]
        mask = [[1] * shared + [0] * (width - len(o)) + [1] * len(o) for o in own]
        cache = copy.deepcopy(prefix_cache)
        cache.batch_repeat_interleave(len(own))
        out = model.generate(input_ids=torch.tensor(ids, device=device),
                             attention_mask=torch.tensor(mask, device=device), past_key_values=cache,
                             max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=pad,
                             eos_token_id=tokenizer.eos_token_id)
        answers += tokenizer.batch_decode(out[:, shared + width:], skip_special_tokens=True)
    return [a.strip() for a in answers]


def run_prompting(model, tokenizer, rows: list[dict], shots: list[dict], batch_size: int = 16,
                  latency_rows: int = 8, answered=None, system: str = TASK_PROMPT) -> dict:
    """Score one prompting set-up on ``rows``: exact match, format, prompt tokens and time per request.

    Two times, because they answer different questions: ``seconds_per_request`` is the batched run's time
    divided by its rows (the cost of scoring a file; the examples of a few-shot prompt are computed once for
    the whole file, see :func:`generate_with_shared_prefix`); ``latency_seconds`` is the mean time of the first
    ``latency_rows`` requests sent one at a time with nothing cached (what a user waiting for one answer sees).

    ``system``: the system turn. Prompting a model that was not trained on the task needs the task said
    (:data:`~helpers.chat.TASK_PROMPT`, the default); the fine-tuned model is queried as it was trained,
    with :data:`~helpers.chat.SYSTEM_PROMPT`.

    ``answered``: the :class:`~helpers.evaluation.Scores` of this model on the same rows from
    ``evaluate_rows``, reused for a zero-shot set-up with the fine-tune's own system turn (so the same
    answers) instead of generating them a second time.
    """
    from helpers.evaluation import generate_answers, score

    def as_prompt(instruction):
        return few_shot_messages(instruction, shots, system)

    instructions = [r["instruction"] for r in rows]
    if answered is not None:
        if shots:
            raise ValueError("answers can be reused for zero-shot only: evaluate_rows sends no examples")
        if system != SYSTEM_PROMPT:
            raise ValueError("answers can be reused only with the fine-tune's own system turn: evaluate_rows "
                             "sends helpers.chat.SYSTEM_PROMPT")
        if [p["instruction"] for p in answered.predictions] != instructions:
            raise ValueError("the answers to reuse are for other rows")
        scores = answered
    else:
        start = time.perf_counter()
        if shots:
            answers = generate_with_shared_prefix(model, tokenizer, instructions, shots, batch_size, system=system)
        else:
            answers = generate_answers(model, tokenizer, instructions, batch_size, progress=False, messages=as_prompt)
        scores = score(rows, answers, time.perf_counter() - start)
    alone = []
    for instruction in instructions[:latency_rows]:
        start = time.perf_counter()
        generate_answers(model, tokenizer, [instruction], 1, progress=False, messages=as_prompt)
        alone.append(time.perf_counter() - start)
    tokens = [prompt_tokens(tokenizer, r["instruction"], shots, system) for r in rows]
    return {**scores.headline(), "shots": len(shots), "prompt_tokens_per_request": sum(tokens) / len(tokens),
            "seconds_per_request": round(scores.seconds_per_row, 4),
            "latency_seconds": round(sum(alone) / len(alone), 4) if alone else None}
