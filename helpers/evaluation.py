"""Chapter 5: scoring a model on the ICD-10 task.

The model answers each instruction greedily (deterministic, so a rerun gives
the same score); the code is pulled out of the answer and compared with the
reference through a local ``evaluate`` module (see ``helpers/metrics``).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from helpers.atomic import write_json
from helpers.chat import SYSTEM_PROMPT, extract_code, prompt_messages
from helpers.jsonl import write_jsonl

METRICS_DIR = Path(__file__).resolve().parent / "metrics"


def load_metric(name: str):
    """A metric shipped with the course, loaded from disk (no Hub access)."""
    import evaluate

    return evaluate.load(str(METRICS_DIR / name))


#: new tokens per answer: "DIAGNOSIS_CODE: M54.50" and the end-of-turn token take about 12
ANSWER_TOKENS = 16


def generate_answers(model, tokenizer, instructions: list[str], batch_size: int = 16,
                     max_new_tokens: int = ANSWER_TOKENS, desc: str = "answering", progress: bool = True,
                     messages=prompt_messages) -> list[str]:
    """Greedy answers to each instruction, formatted with the course's chat template.

    ``messages`` turns an instruction into the conversation sent to the model
    (default: the course's system prompt and the instruction; chapter 5's
    few-shot prompts pass their own).
    """
    answers: list[str] = []
    for start in tqdm(range(0, len(instructions), batch_size), desc=desc, unit="batch", disable=not progress):
        texts = [tokenizer.apply_chat_template(messages(i), tokenize=False, add_generation_prompt=True)
                 for i in instructions[start:start + batch_size]]
        _, completions = generate_batch(model, tokenizer, texts, max_new_tokens)
        answers += tokenizer.batch_decode(completions, skip_special_tokens=True)
    return [a.strip() for a in answers]


@torch.no_grad()
def generate_batch(model, tokenizer, texts: list[str],
                   max_new_tokens: int = ANSWER_TOKENS) -> tuple[list[int], list[list[int]]]:
    """Greedy continuations of chat-formatted ``texts`` in one left-padded batch.

    Returns each prompt's length in tokens and the new token ids up to and
    including the end-of-turn token (the padding after it is dropped), so a
    server can count tokens and tell a finished answer from a cut one.
    """
    old_side = tokenizer.padding_side
    tokenizer.padding_side = "left"  # generation continues from the right edge
    try:
        enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
        out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                             pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    finally:
        tokenizer.padding_side = old_side
    completions = []
    for row in out[:, enc["input_ids"].shape[1]:].tolist():
        end = row.index(tokenizer.eos_token_id) + 1 if tokenizer.eos_token_id in row else len(row)
        completions.append(row[:end])
    return enc["attention_mask"].sum(dim=1).tolist(), completions


@dataclass
class Scores:
    n: int
    exact_match: float
    format_compliance: float
    billable_rate: float
    seconds_per_row: float
    predictions: list[dict] = field(repr=False, default_factory=list)

    def headline(self) -> dict:
        return {"n": self.n, "exact_match": round(self.exact_match, 4),
                "format_compliance": round(self.format_compliance, 4), "billable_rate": round(self.billable_rate, 4)}

    def interval95(self) -> tuple[float, float]:
        """The 95 % interval of this exact match (:func:`interval95` over the rows scored)."""
        return interval95(sum(p["correct"] for p in self.predictions), self.n)


def score(rows: list[dict], answers: list[str], seconds: float = 0.0) -> Scores:
    """Exact match, format compliance and billable-code rate, each from a local ``evaluate`` module."""
    references = [row_code(r) for r in rows]
    predicted = [extract_code(a) for a in answers]
    codes = [p or "" for p in predicted]  # the metrics' features are strings
    em = load_metric("diagnosis_exact_match").compute(predictions=codes, references=references)["exact_match"]
    compliance = load_metric("diagnosis_format").compute(predictions=answers)["format_compliance"]
    billable = load_metric("billable_code").compute(predictions=codes)["billable_rate"]
    predictions = [
        {"instruction": r["instruction"], "reference": ref, "answer": a, "predicted": p, "correct": p == ref}
        for r, ref, a, p in zip(rows, references, answers, predicted)
    ]
    n = len(rows)
    return Scores(n=n, exact_match=em, format_compliance=compliance, billable_rate=billable,
                  seconds_per_row=seconds / n if n else 0.0, predictions=predictions)


def per_code(scores: Scores) -> list[dict]:
    """Accuracy per reference code, worst first: where the model needs more (or better) data."""
    table: dict[str, list[int]] = {}
    for p in scores.predictions:
        table.setdefault(p["reference"], [0, 0])
        table[p["reference"]][0] += 1
        table[p["reference"]][1] += p["correct"]
    rows = [{"code": code, "n": n, "correct": ok, "accuracy": ok / n} for code, (n, ok) in table.items()]
    return sorted(rows, key=lambda r: (r["accuracy"], r["code"]))


def confusions(scores: Scores, top: int = 10) -> list[dict]:
    """The most frequent (reference, predicted) pairs among wrong answers."""
    from collections import Counter

    pairs = Counter((p["reference"], p["predicted"] or "(no code)") for p in scores.predictions if not p["correct"])
    return [{"reference": ref, "predicted": pred, "count": n} for (ref, pred), n in pairs.most_common(top)]


def confusion_matrix(scores: Scores, top: int = 10):
    """Counts of (reference, answered) for the codes most involved in errors: (labels, square int array).

    The labels are the ``top`` codes that appear most often in wrong answers, as reference or as answer;
    row i, column j counts the rows of reference i answered j (right answers on the diagonal).
    """
    from collections import Counter

    import numpy as np

    involved = Counter()
    for p in scores.predictions:
        if not p["correct"]:
            involved[p["reference"]] += 1
            involved[p["predicted"] or "(no code)"] += 1
    labels = [code for code, _ in involved.most_common(top)]
    index = {code: i for i, code in enumerate(labels)}
    matrix = np.zeros((len(labels), len(labels)), dtype=int)
    for p in scores.predictions:
        answered = p["predicted"] or "(no code)"
        if p["reference"] in index and answered in index:
            matrix[index[p["reference"]], index[answered]] += 1
    return labels, matrix


def row_code(row: dict) -> str:
    code = row.get("code") or extract_code(row["response"])
    if code is None:
        raise ValueError(f"row has no DIAGNOSIS_CODE in its response: {row['response']!r}")
    return code


def evaluate_rows(model, tokenizer, rows: list[dict], batch_size: int = 16, desc: str = "answering",
                  progress: bool = True) -> Scores:
    start = time.perf_counter()
    answers = generate_answers(model, tokenizer, [r["instruction"] for r in rows], batch_size, desc=desc,
                               progress=progress)
    return score(rows, answers, time.perf_counter() - start)


def evaluate_adapter(model, tokenizer, rows: list[dict], batch_size: int = 16, adapter_dir: Path | None = None,
                     desc: str = "fine-tuned", progress: bool = True, store_dir: Path | None = None) -> Scores:
    """:func:`evaluate_rows` for the adapter in ``adapter_dir`` (chapter 4's), answering each row once per adapter.

    Chapters 5, 6 and 7 all need the fine-tuned model's answers on the test
    split (about a minute of generation each on the 2-core machine). The
    answers and their time are stored under a digest of the adapter's files
    (its base model's id included), the rows, the prompt, the answer length,
    the model's dtype and device and the batch size (padding changes the
    arithmetic, so it can change a greedy answer): a later chapter reuses
    them, and anything else is answered afresh.
    """
    import hashlib
    import json

    from helpers.paths import ADAPTER_DIR, OUTPUTS

    adapter_dir = Path(adapter_dir or ADAPTER_DIR)
    digest = hashlib.sha256()
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        digest.update((adapter_dir / name).read_bytes())
    digest.update(json.dumps([[r["instruction"], row_code(r)] for r in rows]).encode())
    # Everything else that shapes a greedy answer: the prompt, the generation length, the arithmetic.
    settings = {"batch_size": batch_size, "system_prompt": SYSTEM_PROMPT, "template": tokenizer.chat_template,
                "max_new_tokens": ANSWER_TOKENS, "dtype": str(model.dtype), "device": str(model.device)}
    digest.update(json.dumps(settings, sort_keys=True).encode())
    stored = Path(store_dir or OUTPUTS / "answers") / f"{digest.hexdigest()[:16]}.json"
    try:
        saved = json.loads(stored.read_text())
        answers, seconds = saved["answers"], saved["seconds"]
    except (OSError, ValueError, KeyError):  # none yet, or a write cut short: answer afresh
        saved = None
    if saved is not None and len(answers) == len(rows):
        print(f"{desc}: the answers an earlier chapter generated with this adapter, for these rows")
        return score(rows, answers, seconds)
    scores = evaluate_rows(model, tokenizer, rows, batch_size, desc=desc, progress=progress)
    # atomic: a reader sees the whole file or none
    write_json(stored, {"answers": [p["answer"] for p in scores.predictions],
                        "seconds": scores.seconds_per_row * scores.n}, indent=None)
    return scores


def write_predictions(scores: Scores, path: Path) -> Path:
    """Each row's prediction as JSON Lines, the instruction PII-scrubbed (a learner's data may hold a name, a number)."""
    from helpers.pii import scrub

    return write_jsonl(({**p, "instruction": scrub(p["instruction"])[0]} for p in scores.predictions), path)


def mismatches(scores: Scores, limit: int = 10) -> list[dict]:
    return [p for p in scores.predictions if not p["correct"]][:limit]


def nearest_train_similarity(rows: list[dict], train_rows: list[dict]) -> list[float]:
    """For each row, how close the most similar training phrasing of the same code is (0 to 1).

    The instruction wording ("What is the ICD-10-CM code for ...") is cut out
    first, as chapter 1's decontamination does; what remains is compared as a
    set of words (Jaccard). A low value means the model never saw anything
    like this complaint for that code: a test of generalisation, not recall.
    """
    from types import SimpleNamespace

    from helpers.curate import boilerplate, content_words, jaccard

    common = boilerplate([SimpleNamespace(data=r, code=row_code(r)) for r in [*rows, *train_rows]])
    by_code: dict[str, list[set[str]]] = {}
    for r in train_rows:
        by_code.setdefault(row_code(r), []).append(set(content_words(r["instruction"], common)))
    out = []
    for r in rows:
        words = set(content_words(r["instruction"], common))
        out.append(max((jaccard(words, other) for other in by_code.get(row_code(r), []) if words | other),
                       default=0.0))
    return out


def interval95(correct: int, n: int) -> tuple[float, float]:
    """The 95 % Wilson interval of an exact-match rate of ``correct`` out of ``n`` rows (scipy).

    A test split is a sample of the complaints the model will meet: on 129
    rows one answer moves the score by 0.8 points, and a rate near 84 % could
    as well have come out anywhere from about 76 to 89 %. Two scores whose
    intervals overlap widely are not yet evidence that one model is better.
    """
    from scipy.stats import binomtest

    if n == 0:
        raise ValueError("no rows: an exact-match rate needs at least one")
    ci = binomtest(correct, n).proportion_ci(confidence_level=0.95, method="wilson")
    return float(ci.low), float(ci.high)


def by_novelty(scores: Scores, similarity: list[float]) -> dict:
    """Exact match on the half of the rows least like training and on the other half.

    Split by rank, not by a threshold: many rows can share one similarity
    (several at 0.0), and a threshold could leave a half empty.
    """
    if len(similarity) != len(scores.predictions):
        raise ValueError("one similarity per scored row is needed")
    order = sorted(range(len(similarity)), key=lambda i: similarity[i])
    half = len(order) // 2
    unlike, like = order[:half], order[half:]

    def correct(indices):
        return sum(scores.predictions[i]["correct"] for i in indices)

    def rate(indices):
        return round(correct(indices) / len(indices), 4) if indices else None

    def ci(indices):
        return [round(end, 4) for end in interval95(correct(indices), len(indices))] if indices else None

    return {"median_similarity": round(similarity[order[half]], 4) if order else 0.0,
            "unlike_n": len(unlike), "unlike_exact_match": rate(unlike), "unlike_ci95": ci(unlike),
            "like_n": len(like), "like_exact_match": rate(like), "like_ci95": ci(like)}


def mcnemar(first: Scores, second: Scores) -> dict:
    """McNemar's exact test of two models scored on the same rows: do they differ, or is it luck?

    Rows both get right or both get wrong say nothing about which is better;
    only the rows where exactly one is right count. If the models were equally
    good, each such row would be a fair coin toss, so the p-value is scipy's
    two-sided binomial test of the second model's wins among them. Below 0.05
    the difference is called a difference; above, it is not yet one.
    """
    from scipy.stats import binomtest

    if [p["instruction"] for p in first.predictions] != [p["instruction"] for p in second.predictions]:
        raise ValueError("a paired test needs both models scored on the same rows, in the same order")
    only_first = sum(a["correct"] and not b["correct"] for a, b in zip(first.predictions, second.predictions))
    only_second = sum(b["correct"] and not a["correct"] for a, b in zip(first.predictions, second.predictions))
    discordant = only_first + only_second
    p_value = float(binomtest(only_second, discordant).pvalue) if discordant else 1.0
    return {"only_first": only_first, "only_second": only_second, "p_value": p_value}
