"""Chapter 4b: full fine-tuning vs LoRA vs QLoRA, LoRA's placement, and what curation buys, side by side.

Every variant trains on the same codes (the first ``compare_codes`` of
:data:`COMPARE_CODES`) for the same number of optimizer steps, with the same
batch size and the same measurements: trainable parameters, peak memory,
training time, and on the validation split exact match (with its interval),
format compliance, billable rate and stale answers, plus MMLU before and
after (the profile's ``mmlu_per_epoch`` subset, compared item by item).
The test split is not scored here: chapter 5 scores the chosen recipe on
it once.

Each variant runs in its own Python process (``python -m helpers.flavours
NAME --out FILE``). A process's peak memory only ever grows, so variants run
one after another in one process would all report the largest peak so far;
a fresh process per variant measures each one alone.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from helpers.atomic import write_json
from helpers.cli import Parser, output_file
from helpers.config import Profile, get_profile
from helpers.errors import run_cli
from helpers.memory import peak_rss_mib
from helpers.paths import OUTPUTS, ROOT

#: The codes every variant trains on: those whose raw rows carry the defects chapter 1 removes (stale codes such
#: as M54.5 for M54.50, answers in the wrong format), so the data-quality comparison has something to show.
COMPARE_CODES = ("M54.50", "R51.9", "R05.9", "M79.10", "K59.00", "R06.02")


@dataclass(frozen=True)
class Variant:
    label: str
    method: str = "lora"  # "lora" or "full"
    quantize: str | None = None  # base loaded in 4-bit NF4 for QLoRA
    targets: str | None = None  # None: the profile's LoRA targets
    r: int | None = None  # None: the profile's rank (alpha stays 2 x r)
    learning_rate: float | None = None  # None: the profile's
    split: str = "train"  # "train_uncurated": the same recipe on the data before chapter 1


VARIANTS: dict[str, Variant] = {
    # Full fine-tuning moves every weight, so it needs a far smaller step than
    # LoRA, whose update starts at zero and is low-rank.
    "full": Variant("full fine-tuning", method="full", learning_rate=5e-5),
    "lora": Variant("LoRA (chapter 4's adapter)"),
    "qlora": Variant("QLoRA (4-bit NF4 base)", quantize="4bit"),
    # Attention only trains about a third of the weights all-linear does; a fair comparison gives it its own
    # learning rate, chosen on validation between chapter 4's and a larger one.
    "lora-attention": Variant("LoRA, attention only (lr 1e-3)", targets="attention"),
    "lora-attention-lr4e-3": Variant("LoRA, attention only (lr 4e-3)", targets="attention", learning_rate=4e-3),
    "lora-uncurated": Variant("LoRA on the uncurated data", split="train_uncurated"),
}
#: the three ways to fine-tune (seed question: full FT vs LoRA vs QLoRA)
FLAVOURS = ["full", "lora", "qlora"]
#: where LoRA goes (chapter 4's adapter is the all-linear one)
RECIPES = ["lora-attention", "lora-attention-lr4e-3", "lora"]
#: what chapter 1's curation buys
DATA_QUALITY = ["lora", "lora-uncurated"]


def compare_profile(profile: Profile) -> Profile:
    """The profile's smaller, shared budget for side-by-side runs (no early stopping: equal steps for all).

    A constant rate after the warm-up, whatever the profile's schedule: a few dozen steps are too few to decay
    over (in the ``ci`` trials cosine decay shrank the steps before the codes were told apart).
    """
    return dataclasses.replace(profile, codes=profile.compare_codes, epochs=profile.compare_epochs, patience=None,
                               probe_limit=profile.compare_probe_items, lr_schedule="constant_with_warmup",
                               mmlu_per_epoch=profile.mmlu_per_epoch if profile.compare_mmlu else None)


def compare_rows(split: str, budget: Profile) -> list[dict]:
    """The rows of a split for the comparison's codes (the first ``budget.codes`` of :data:`COMPARE_CODES`)."""
    from helpers.training import load_split

    codes = set(COMPARE_CODES[: budget.codes])
    return [r for r in load_split(split) if r.get("code") in codes]


def equal_steps(budget: Profile) -> int:
    """Optimizer steps every variant takes: the budget's epochs over the curated training rows.

    The uncurated set has more rows (duplicates and all); at equal epochs it would also get more steps, and the
    comparison would measure the extra steps as much as the data.
    """
    rows = len(compare_rows("train", budget))
    return budget.epochs * math.ceil(rows / (budget.batch_size * budget.grad_accum))


def stale_answers(scores) -> int:
    """Answers that name a code the table retired (``M54.5`` where ``M54.50`` is meant): what stale rows teach."""
    from helpers.icd10 import STALE_CODES

    return sum(p["predicted"] in STALE_CODES for p in scores.predictions)


def constant_answer_rate(rows: list[dict]) -> float:
    """Exact match of a model that always writes the most common code: the floor a run must clear to count."""
    from collections import Counter

    return max(Counter(r["code"] for r in rows).values()) / len(rows) if rows else 0.0


def peak_memory_mb(device: str) -> tuple[float, str]:
    """Peak memory of this process so far: GPU memory allocated by torch, or resident memory on CPU."""
    if device == "cuda":
        import torch

        return torch.cuda.max_memory_allocated() / 2**20, "GPU memory allocated (peak)"
    return peak_rss_mib() or 0.0, "resident memory (peak RSS)"


@contextmanager
def measured(device: str):
    """Wall time and the process's peak memory up to the end of the block, filled into the dict it yields.

    Chapter 4b's variants and ``helpers.profile_run``'s headline run are
    measured by this one block, so their columns mean the same thing.
    """
    if device == "cuda":
        import torch

        torch.cuda.reset_peak_memory_stats()
    found: dict = {}
    start = time.perf_counter()
    yield found
    found["train_minutes"] = round((time.perf_counter() - start) / 60, 2)
    peak_mb, found["memory_kind"] = peak_memory_mb(device)
    found["peak_memory_mb"] = round(peak_mb, 1)


def scored_on(trainer, tokenizer, rows: list[dict], batch_size: int):
    """Greedy answers of the trained model on ``rows``, scored (:func:`helpers.evaluation.evaluate_rows`)."""
    from helpers.evaluation import evaluate_rows

    trainer.model.eval()
    return evaluate_rows(trainer.model, tokenizer, rows, batch_size, progress=False)


def run_variant(name: str, profile: Profile | None = None) -> dict:
    """Train and measure one variant in this process; returns its row of the comparison table.

    General knowledge is MMLU (the profile's ``mmlu_per_epoch`` subset) before and after training, compared item by
    item (McNemar). Every LoRA variant starts from the same base (an adapter starts at zero), so the base is scored
    once per kind of base (float32, or 4-bit for QLoRA): :func:`helpers.mmlu.score` keeps the figure.
    """
    from helpers.mmlu import compare as compare_mmlu
    from helpers.mmlu import score
    from helpers.lora import count_parameters
    from helpers.training import EpochEval, make_trainer, model_for_training, peft_config_for, seed_everything

    variant = VARIANTS[name]
    budget = compare_profile(profile or get_profile())
    r = variant.r or budget.lora_r
    # The variant as a profile, so the model and adapter come from chapter 4's own functions.
    setup = dataclasses.replace(budget, quantize_base=variant.quantize, lora_r=r, lora_alpha=2 * r,
                                lora_targets=variant.targets or budget.lora_targets,
                                learning_rate=variant.learning_rate or budget.learning_rate)
    seed_everything(0)
    train_rows = compare_rows(variant.split, budget)
    val_rows = compare_rows("val", budget)
    steps = equal_steps(budget)

    peft_config = None
    if variant.method == "full":
        # Full fine-tuning keeps float32 master weights (half precision comes from autocast): pure fp16/bf16
        # weights would round away most of its small updates, and fp16 gradients cannot be unscaled.
        model, tokenizer = model_for_training(dataclasses.replace(setup, dtype="float32"))
        model.requires_grad_(True)
        model.train()
    else:
        model, tokenizer = model_for_training(setup)
        peft_config = peft_config_for(setup, model)
    benchmark = budget.mmlu_per_epoch
    before = None
    if benchmark and peft_config is None:  # full fine-tuning changes the base itself: score it first
        model.eval()
        before = score(model, tokenizer, benchmark)
        model.train()
    watch = EpochEval(tokenizer, val_rows, budget.eval_batch_size, probe=False)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = make_trainer(model, tokenizer, setup, train_rows, val_rows, output_dir=Path(tmp),
                               peft_config=peft_config, callbacks=[watch], save_strategy="no", max_steps=steps,
                               # every variant measured at the same steps: the ends of the curated set's epochs
                               eval_strategy="steps", eval_steps=steps // budget.epochs)
        params = count_parameters(trainer.model)
        with measured(budget.device) as cost:  # from the first step: the model is loaded and wrapped by now
            trainer.train()
    val = scored_on(trainer, tokenizer, val_rows, budget.eval_batch_size)
    history = watch.history
    general = {}
    if benchmark and before is None:
        # An adapter switched off is the base. Scoring it after training, not before, also keeps a 4-bit base out
        # of eval mode until training is done: on CPU, bitsandbytes repacks 4-bit weights for inference the first
        # time they run without gradients, and training on the repacked weights crawls.
        with trainer.model.disable_adapter():
            before = score(trainer.model, tokenizer, benchmark)
    if before is not None:
        after = score(trainer.model, tokenizer, benchmark)
        paired = compare_mmlu(before, after)
        general = {"general_benchmark": benchmark, "general_n": before["n"],
                   "general_before": before["accuracy"], "general_after": after["accuracy"],
                   "general_change": round(after["accuracy"] - before["accuracy"], 4),
                   "general_interval95_before": before["interval95"], "general_interval95_after": after["interval95"],
                   "general_p_value": paired["p_value"], "general_verdict": paired["verdict"]}
    return {
        "variant": name,
        "label": variant.label,
        "train_rows": len(train_rows),
        "codes": budget.codes,
        "epochs": budget.epochs,
        "steps": steps,
        "learning_rate": setup.learning_rate,
        "trainable_params": params.trainable,
        "total_params": params.total,
        "peak_memory_mb": cost["peak_memory_mb"],
        "memory_kind": cost["memory_kind"],
        "train_minutes": cost["train_minutes"],
        "val_exact_match": val.exact_match,
        "val_interval95": list(val.interval95()),
        "val_rows": val.n,
        "val_format": val.format_compliance,
        "val_billable": val.billable_rate,
        "val_stale_answers": stale_answers(val),
        "constant_answer_rate": constant_answer_rate(val_rows),
        "val_correct": [p["correct"] for p in val.predictions],
        **general,
        "history": history,
    }


def compare(names: list[str], profile: Profile | None = None, out_dir: Path = OUTPUTS / "compare") -> dict:
    """Run each variant in a fresh process (see the module docstring): {name: result}.

    Each result is also written to ``out_dir/<profile>-<name>.json``.
    """
    profile = profile or get_profile()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = {}
    for name in dict.fromkeys(names):
        if name not in VARIANTS:
            raise ValueError(f"unknown variant {name!r}; choose from {', '.join(VARIANTS)}")
        out = out_dir / f"{profile.name}-{name}.json"
        print(f"training {name} ({VARIANTS[name].label}) ...", flush=True)
        env = {**os.environ, "COURSE_PROFILE": profile.name,
               "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        out.unlink(missing_ok=True)
        done = subprocess.run([sys.executable, "-m", "helpers.flavours", name, "--out", str(out)],
                              cwd=ROOT, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-15:])
            raise RuntimeError(f"variant {name!r} failed (exit {done.returncode}):\n{tail}")
        results[name] = json.loads(out.read_text())
        print(f"  {results[name]['train_minutes']:.1f} min, val exact match {results[name]['val_exact_match']:.3f}",
              flush=True)
    return results


def table(rows: list[dict]):
    """The comparison as a pandas DataFrame, one row per variant."""
    import pandas as pd

    columns = ["label", "trainable_params", "peak_memory_mb", "train_minutes", "val_exact_match",
               "val_format", "val_billable", "val_stale_answers", "general_before", "general_after", "general_change"]
    return pd.DataFrame([{k: r.get(k) for k in columns} for r in rows]).set_index("label")


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog="python -m helpers.flavours",
                    description="Train and measure one variant of chapter 4b in this process.")
    parser.add_argument("variant", choices=list(VARIANTS))
    parser.add_argument("--out", type=output_file, required=True, help="where to write the result (JSON)")
    args = parser.parse_args(argv)
    from helpers.notebook import setup

    setup()  # quiet logs, fixed seeds, the profile from COURSE_PROFILE
    result = run_variant(args.variant)
    write_json(args.out, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
