"""Chapter 4b: full fine-tuning vs LoRA vs QLoRA, and LoRA's targets and rank, side by side.

Every variant trains on the same rows (the profile's ``compare_codes`` codes),
for the same number of epochs, with the same batch size and the same
measurements: trainable parameters, peak memory, training time, val and test
exact match, and the general score before and after.

Each variant runs in its own Python process (``python -m helpers.flavours
NAME --out FILE``). A process's peak memory only ever grows, so variants run
one after another in one process would all report the largest peak so far;
a fresh process per variant measures each one alone.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from helpers.config import Profile, get_profile
from helpers.paths import OUTPUTS, ROOT


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
    "lora-attention-r8": Variant("LoRA, attention only, r=8", targets="attention", r=8),
    "lora-attention-r32": Variant("LoRA, attention only, r=32", targets="attention", r=32),
    "lora-uncurated": Variant("LoRA on the uncurated data", split="train_uncurated"),
}
#: the three ways to fine-tune (seed question: full FT vs LoRA vs QLoRA)
FLAVOURS = ["full", "lora", "qlora"]
#: where LoRA goes and how big it is (chapter 4's adapter is the all-linear one)
RECIPES = ["lora-attention-r8", "lora-attention-r32", "lora"]
#: what chapter 1's curation buys
DATA_QUALITY = ["lora", "lora-uncurated"]


def compare_profile(profile: Profile) -> Profile:
    """The profile's smaller, shared budget for side-by-side runs (no early stopping: equal epochs for all).

    A constant rate after the warm-up, whatever the profile's schedule: a few dozen steps are too few to decay
    over (in the ``ci`` trials cosine decay shrank the steps before the codes were told apart).
    """
    return dataclasses.replace(profile, codes=profile.compare_codes, epochs=profile.compare_epochs, patience=None,
                               probe_limit=profile.compare_probe_items, lr_schedule="constant_with_warmup")


def peak_memory_mb(device: str) -> tuple[float, str]:
    """Peak memory of this process so far: GPU memory allocated by torch, or resident memory on CPU."""
    if device == "cuda":
        import torch

        return torch.cuda.max_memory_allocated() / 2**20, "GPU memory allocated (peak)"
    # ru_maxrss is in KiB on Linux (bytes on macOS).
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20, "resident memory (peak RSS)"


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
    """Train and measure one variant in this process; returns its row of the comparison table."""
    from helpers.lora import count_parameters
    from helpers.training import EpochEval, load_split, make_trainer, model_for_training, peft_config_for, seed_everything

    variant = VARIANTS[name]
    budget = compare_profile(profile or get_profile())
    r = variant.r or budget.lora_r
    # The variant as a profile, so the model and adapter come from chapter 4's own functions.
    setup = dataclasses.replace(budget, quantize_base=variant.quantize, lora_r=r, lora_alpha=2 * r,
                                lora_targets=variant.targets or budget.lora_targets,
                                learning_rate=variant.learning_rate or budget.learning_rate)
    seed_everything(0)
    train_rows = load_split(variant.split, budget)
    val_rows, test_rows = load_split("val", budget), load_split("test", budget)

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
    watch = EpochEval(tokenizer, val_rows, budget.eval_batch_size, probe_limit=budget.probe_limit)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = make_trainer(model, tokenizer, setup, train_rows, val_rows, output_dir=Path(tmp),
                               peft_config=peft_config, callbacks=[watch], save_strategy="no")
        params = count_parameters(trainer.model)
        with measured(budget.device) as cost:  # from the first step: the model is loaded and wrapped by now
            trainer.train()
    test = scored_on(trainer, tokenizer, test_rows, budget.eval_batch_size)
    history = watch.history
    general = [p["general_acc"] for p in history if "general_acc" in p]
    return {
        "variant": name,
        "label": variant.label,
        "train_rows": len(train_rows),
        "codes": budget.codes,
        "epochs": budget.epochs,
        "learning_rate": setup.learning_rate,
        "trainable_params": params.trainable,
        "total_params": params.total,
        "peak_memory_mb": cost["peak_memory_mb"],
        "memory_kind": cost["memory_kind"],
        "train_minutes": cost["train_minutes"],
        "val_exact_match": history[-1]["val_exact_match"] if history else None,
        "test_exact_match": test.exact_match,
        "test_rows": test.n,
        "general_before": general[0],
        "general_after": general[-1],
        "general_change": round(general[-1] - general[0], 4),
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
        print(f"  {results[name]['train_minutes']:.1f} min, test exact match {results[name]['test_exact_match']:.3f}",
              flush=True)
    return results


def table(rows: list[dict]):
    """The comparison as a pandas DataFrame, one row per variant."""
    import pandas as pd

    columns = ["label", "trainable_params", "peak_memory_mb", "train_minutes", "val_exact_match",
               "test_exact_match", "general_before", "general_after", "general_change"]
    return pd.DataFrame([{k: r[k] for k in columns} for r in rows]).set_index("label")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.flavours",
                                     description="Train and measure one variant of chapter 4b in this process.")
    parser.add_argument("variant", choices=list(VARIANTS))
    parser.add_argument("--out", type=Path, required=True, help="where to write the result (JSON)")
    args = parser.parse_args(argv)
    from helpers.notebook import setup

    setup()  # quiet logs, fixed seeds, the profile from COURSE_PROFILE
    result = run_variant(args.variant)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
