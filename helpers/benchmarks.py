"""General benchmarks through lm-evaluation-harness: measuring forgetting.

A fine-tune that learns ICD-10 codes may lose general ability. We score the
model before and after on the same multiple-choice items through
lm-evaluation-harness: each choice is scored by the log-likelihood the model
gives it, so no generation or answer parsing is involved.

Offline, the course uses its own probe (``data/benchmarks/``). When the Hub is
reachable (Colab), the standard tasks run through the same code path.
"""
from __future__ import annotations

import contextlib
import functools
import io
import logging
from pathlib import Path

import yaml

from helpers.paths import PROBE_DATASET

PROBE_YAML = PROBE_DATASET.with_suffix(".yaml")
# General tasks, plus the two MMLU subjects closest to the course's domain: a medical fine-tune that
# forgets medicine is worse than one that forgets trivia.
HUB_TASKS = ["arc_easy", "hellaswag", "piqa", "mmlu_clinical_knowledge", "mmlu_college_medicine"]


def probe_task_config(yaml_path: Path = PROBE_YAML) -> dict:
    """The probe's task config with its data file resolved next to the YAML."""
    config = yaml.safe_load(Path(yaml_path).read_text())
    files = config["dataset_kwargs"]["data_files"]
    config["dataset_kwargs"]["data_files"] = {
        split: str((Path(yaml_path).parent / name).resolve()) for split, name in files.items()
    }
    return config


@functools.lru_cache(maxsize=1)
def task_manager():
    """lm-eval's task index, built once per process: indexing every task file takes seconds, and chapter 4
    runs the probe after every epoch."""
    from lm_eval.tasks import TaskManager

    return TaskManager()


@contextlib.contextmanager
def quiet_harness():
    """No progress bars from lm-eval (on stderr) or the datasets library (a widget in Jupyter) inside the block.

    Chapter 4 runs the probe after every epoch, and a page of bars per run would bury the training log.
    """
    import datasets

    logging.getLogger("lm_eval").setLevel(logging.ERROR)
    bars = datasets.utils.logging.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        if bars:
            datasets.enable_progress_bars()


def evaluate_tasks(model, tokenizer, tasks: list, limit: int | None = None, batch_size: int = 16,
                   log_samples: bool = False, chat: bool = False, bf16: bool = False) -> dict:
    """lm-eval's ``simple_evaluate`` on an in-memory model (plain or PEFT), quietly; its whole output.

    ``log_samples=True`` adds each item's result under ``"samples"`` (what per-item comparisons need);
    ``chat=True`` wraps each question in the tokenizer's chat template (lm-eval's ``apply_chat_template``);
    ``bf16=True`` computes the forward pass under bfloat16 autocast. It must be the harness's own setting
    (``mixed_precision_dtype``): the harness wraps every forward pass in an autocast region of its own, which
    switches off any autocast the caller opened around it.
    """
    import lm_eval
    from lm_eval.models.huggingface import HFLM

    with quiet_harness():
        lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size, device=str(model.device),
                  mixed_precision_dtype="bfloat16" if bf16 else None)
        return lm_eval.simple_evaluate(model=lm, tasks=tasks, limit=limit, log_samples=log_samples,
                                       apply_chat_template=chat,
                                       task_manager=task_manager(), bootstrap_iters=0, random_seed=0,
                                       numpy_random_seed=0, torch_random_seed=0)


def run_tasks(model, tokenizer, tasks: list, limit: int | None = None, batch_size: int = 16) -> dict:
    """Run lm-eval tasks on an in-memory model; returns {task: {metric: value}}."""
    out = evaluate_tasks(model, tokenizer, tasks, limit=limit, batch_size=batch_size)
    return {
        task: {k.split(",")[0]: v for k, v in metrics.items() if k.split(",")[0] in ("acc", "acc_norm")}
        for task, metrics in out["results"].items()
    }


def general_probe(model, tokenizer, limit: int | None = None, batch_size: int = 16) -> dict:
    """Accuracy on the course's offline probe: {"acc": ..., "acc_norm": ..., "n": ...}."""
    result = run_tasks(model, tokenizer, [probe_task_config()], limit=limit, batch_size=batch_size)
    scores = result["course_general_probe"]
    n_items = sum(1 for line in PROBE_DATASET.read_text().splitlines() if line.strip())
    scores["n"] = min(limit, n_items) if limit else n_items
    return scores


def probe_both_ways(model, tokenizer, limit: int | None = None, batch_size: int = 16) -> dict:
    """The probe scored as plain text (how it runs everywhere else) and inside the chat template.

    A fine-tune trained on chat-formatted rows can gain on a plain-text probe only because it got better at
    answering *in the format it was trained on*; scoring both ways separates format from knowledge. Returns
    ``{"plain": {...}, "chat": {...}}``, each ``{"acc", "n", "item_correct"}`` (per item, in the probe's order).
    """
    found = {}
    for way in ("plain", "chat"):
        out = evaluate_tasks(model, tokenizer, [probe_task_config()], limit=limit, batch_size=batch_size,
                             log_samples=True, chat=way == "chat")
        samples = sorted(out["samples"]["course_general_probe"], key=lambda s: s["doc_id"])
        right = [bool(s["acc"]) for s in samples]
        found[way] = {"acc": sum(right) / len(right), "n": len(right), "item_correct": right}
    return found


def hub_benchmarks(model, tokenizer, limit: int = 200, batch_size: int = 16) -> dict | None:
    """Standard tasks from the Hub (Colab); None with a message when offline."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        print("Hub benchmarks skipped: HF_HUB_OFFLINE is set (they download their data sets).")
        return None
    try:
        return run_tasks(model, tokenizer, HUB_TASKS, limit=limit, batch_size=batch_size)
    except Exception as exc:  # noqa: BLE001 - any download failure means "offline" to the learner
        print(f"Hub benchmarks skipped: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
        return None


def hub_benchmarks_before_after(base_model, tuned_model, tokenizer, limit: int = 200,
                                batch_size: int = 16) -> dict | None:
    """The standard tasks on both models: {task: {"base", "fine-tuned", "change"}} in accuracy, or None offline.

    The probe's question (what did fine-tuning cost?) asked of public benchmarks; the base is scored first, so a
    download failure is reported once, before the slower second run.
    """
    before = hub_benchmarks(base_model, tokenizer, limit=limit, batch_size=batch_size)
    if before is None:
        return None
    after = hub_benchmarks(tuned_model, tokenizer, limit=limit, batch_size=batch_size)
    if after is None:
        return None
    return {task: {"base": before[task]["acc"], "fine-tuned": after[task]["acc"],
                   "change": round(after[task]["acc"] - before[task]["acc"], 4)}
            for task in before if task in after and "acc" in before[task] and "acc" in after[task]}
