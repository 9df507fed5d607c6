"""A team's fine-tuning run from a recipe file: curate -> train -> evaluate -> merge -> run.json.

    python -m helpers.train --config recipes/icd10_lora_cpu.yaml [--resume] [--output-dir D] [key=value ...]
    accelerate launch --cpu --num_processes 2 -m helpers.train --config recipes/tiny_cpu.yaml

The recipe (``helpers.recipe``) names a profile to start from, the data, LoRA,
the evaluations and any ``SFTConfig`` field. Each stage uses the course's own
functions (chapter 1's ``curate``, chapter 4's ``make_trainer`` and
``EpochEval``, chapter 5's scoring, chapter 7's merge) and leaves its result in
the run's own folder::

    <output_dir>/recipe.json          the recipe as resolved, written before anything else
    <output_dir>/data/                curated splits (when the recipe gives raw files)
    <output_dir>/checkpoints/         the trainer's checkpoints: --resume continues from the newest
    <output_dir>/tensorboard/         loss, learning rate, val exact match, general score per step
    <output_dir>/adapter/             the LoRA adapter, with training.json (losses, epochs, time)
    <output_dir>/test_predictions.jsonl, evaluation.json
    <output_dir>/merged/              base + adapter as one model, ready to serve
    <output_dir>/run.json             the summary: config, versions, machine, scores, time per stage

Every file and folder is written atomically (``helpers.atomic``), and a stage
whose result is already there is not run again, so ``--resume`` after a kill
at any point finishes the run; checkpoints live inside the run's folder, so a
run resumes only from its own. Under ``accelerate launch`` every process
trains (DDP, FSDP or DeepSpeed, as the accelerate config says) and only the
main process curates, evaluates, merges and writes.
"""
from __future__ import annotations

import json
import os
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from helpers.atomic import atomic_dir, write_json
from helpers.cli import Parser, output_folder
from helpers.errors import CourseError, run_cli
from helpers.paths import RECIPE_CURATION, show
from helpers.recipe import Recipe, jsonable, load


def _probe(model, tokenizer, recipe: Recipe) -> dict:
    from helpers.benchmarks import general_probe

    return general_probe(model, tokenizer, limit=recipe.profile.probe_limit)


#: General benchmarks scored on the trained model after training, by the name a recipe's ``general_evals`` uses.
#: Each takes (model, tokenizer, recipe) and returns its scores as a dict with an "acc". An MMLU subset joins here
#: as one more entry (e.g. "mmlu": scores on the MMLU subjects of helpers.mmlu), with nothing else to change.
GENERAL_EVALS = {"probe": _probe}


@dataclass(frozen=True)
class RunDir:
    """Where each stage of one run leaves its result (see the module docstring)."""

    root: Path

    recipe = property(lambda self: self.root / "recipe.json")
    data = property(lambda self: self.root / "data")
    checkpoints = property(lambda self: self.root / "checkpoints")
    tensorboard = property(lambda self: self.root / "tensorboard")
    adapter = property(lambda self: self.root / "adapter")
    training = property(lambda self: self.root / "adapter" / "training.json")
    predictions = property(lambda self: self.root / "test_predictions.jsonl")
    evaluation = property(lambda self: self.root / "evaluation.json")
    merged = property(lambda self: self.root / "merged")
    merging = property(lambda self: self.root / "merged" / "merge.json")
    curation = property(lambda self: self.root / "data" / RECIPE_CURATION)
    summary = property(lambda self: self.root / "run.json")


def check_run_dir(run: RunDir, recipe: Recipe, resume: bool) -> None:
    """A fresh run needs a folder no earlier run used; a resumed one, the recipe it started with."""
    root = run.root
    if root.exists() and not root.is_dir():
        raise CourseError(f"{show(root)}: exists and is not a folder (output_dir names the run's folder)")
    output_folder(str(root))  # a folder this user can write, or one line saying why not
    earlier = [p.name for p in (run.recipe, run.data, run.checkpoints, run.adapter, run.summary) if p.exists()]
    if earlier and not resume:
        raise CourseError(f"{show(root)}: holds an earlier run ({', '.join(earlier)}): pass --resume to continue it, "
                          f"or give another --output-dir")
    if resume and run.recipe.is_file():
        before = json.loads(run.recipe.read_text())["set"]
        now = recipe.resolved()["set"]
        for key in sorted(before.keys() | now.keys()):
            if key != "output_dir" and before.get(key) != now.get(key):
                raise CourseError(f"{show(root)}: {key}: the run being resumed has {before.get(key)!r}, this "
                                  f"recipe {now.get(key)!r}; resume it with the recipe it started with")


def prepare_data(recipe: Recipe, run: RunDir) -> tuple[Path, dict]:
    """The curated splits: the recipe's own folder, the course's, or its raw files curated into the run's folder."""
    from helpers.curate import curate, fingerprint

    given = recipe.splits_dir()
    if given is not None:
        from helpers.training import ensure_curated

        return ensure_curated(given), {"splits": show(given), "curated": False}
    raw, later = [Path(p) for p in recipe.data.raw_data], [Path(p) for p in recipe.data.train_only_data]
    done = _stage(run.curation)
    if done is not None and done["fingerprint"] == fingerprint(raw, later):
        return run.data, done
    start = time.perf_counter()
    max_length = recipe.explicit.get("max_length") or recipe.profile.max_length
    with atomic_dir(run.data) as tmp:  # a curation cut short leaves no folder that looks complete
        report = curate(raw, tmp, seed=recipe.data.curate_seed, max_length=max_length, train_only=later)
        done = {"splits": show(run.data), "curated": True, "fingerprint": report["fingerprint"],
                "seconds": round(time.perf_counter() - start, 1), "input_rows": report["input_rows"],
                "kept": report["kept"], "rejected": report["rejected"], "splits_rows": report["splits"],
                "by_reason": report["by_reason"]}
        write_json(tmp / "curation.json", done)
    return run.data, done


def _max_length(recipe: Recipe, splits: Path) -> int:
    """The recipe's token limit, else the profile's, else the one curation chose from the splits' lengths."""
    return (recipe.explicit.get("max_length") or recipe.profile.max_length
            or json.loads((splits / "report.json").read_text())["tokens"]["max_length"])


def train(recipe: Recipe, run: RunDir, splits: Path, resume: bool, main: bool) -> dict:
    """Chapter 4's training under the recipe; the adapter and its training.json land together in ``adapter/``."""
    from accelerate import PartialState

    from helpers.flavours import measured
    from helpers.training import (EpochEval, last_checkpoint, load_split, make_trainer, model_for_training,
                                  peft_config_for, save_adapter)

    profile = recipe.profile
    model, tokenizer = model_for_training(profile)
    val_rows = load_split("val", profile, splits)
    callbacks = ([EpochEval(tokenizer, val_rows, profile.eval_batch_size, probe_limit=profile.probe_limit,
                             mmlu=profile.mmlu_per_epoch)]
                 if recipe.evals.epoch_eval else [])
    # transformers 5 takes TensorBoard's folder from the environment only; the run keeps it in its own folder.
    os.environ["TENSORBOARD_LOGGING_DIR"] = str(Path(recipe.data.logging_dir or run.tensorboard).resolve())
    overrides = {"report_to": ["tensorboard"], "max_length": _max_length(recipe, splits), **recipe.sft_overrides}
    trainer = make_trainer(model, tokenizer, profile, load_split("train", profile, splits), val_rows,
                           output_dir=run.checkpoints, peft_config=peft_config_for(profile, model), callbacks=callbacks,
                           patience=profile.patience if recipe.evals.epoch_eval else None, **overrides)
    checkpoint = last_checkpoint(run.checkpoints) if resume else None
    if main and checkpoint:
        print(f"resuming from {show(checkpoint)}", flush=True)
    with measured(profile.device) as cost:
        trainer.train(resume_from_checkpoint=checkpoint)
    # Sharded training (FSDP, ZeRO-3) leaves each process a shard: every process takes part in gathering the weights.
    sharded = trainer.is_fsdp_enabled or trainer.is_deepspeed_enabled
    state_dict = trainer.accelerator.get_state_dict(trainer.model_wrapped) if sharded else None
    log = trainer.state.log_history
    result = {
        "steps": trainer.state.global_step,
        "epochs": round(trainer.state.epoch or 0.0, 2),
        "resumed_from": show(checkpoint) if checkpoint else None,
        "processes": PartialState().num_processes,
        "train_rows": len(trainer.train_dataset),
        "train_loss": [[e["step"], round(e["loss"], 5)] for e in log if "loss" in e],
        "val_loss": [[e["step"], round(e["eval_loss"], 5)] for e in log if "eval_loss" in e],
        "per_epoch": [{k: v for k, v in e.items() if k in ("epoch", "step", "val_exact_match", "general_acc")}
                      for e in log if "val_exact_match" in e or "general_acc" in e],
        "best_checkpoint": show(trainer.state.best_model_checkpoint) if trainer.state.best_model_checkpoint else None,
        "seconds": round(cost["train_minutes"] * 60, 1),
        "peak_memory_mb": cost["peak_memory_mb"],
        "memory_kind": cost["memory_kind"],
        "sft_config": jsonable(trainer.args.to_dict()),  # every SFTConfig field as the trainer used it
    }
    if main:
        with atomic_dir(run.adapter) as tmp:
            save_adapter(trainer, tokenizer, tmp, base_model_id=profile.model_id, state_dict=state_dict)
            write_json(tmp / "training.json", result)
    return result


def _eval_device(recipe: Recipe) -> tuple[str, str]:
    """Device and dtype to score on: the profile's GPU in its dtype, or the CPU in float32 as chapter 5 scores."""
    profile = recipe.profile
    return (profile.device, profile.dtype) if profile.device == "cuda" else ("cpu", "float32")


def evaluate(recipe: Recipe, run: RunDir, splits: Path) -> dict:
    """Test exact match with its 95 % interval, and each general benchmark, on the saved adapter."""
    from helpers.evaluation import evaluate_rows, write_predictions
    from helpers.models import load_trained
    from helpers.training import load_split

    start = time.perf_counter()
    device, dtype = _eval_device(recipe)
    model, tokenizer = load_trained(run.adapter, device=device, dtype=dtype)
    rows = load_split("test", recipe.profile, splits)
    scores = evaluate_rows(model, tokenizer, rows, recipe.profile.eval_batch_size, desc="test")
    write_predictions(scores, run.predictions)
    general = {name: GENERAL_EVALS[name](model, tokenizer, recipe) for name in recipe.evals.general_evals}
    return {"test": {**scores.headline(), "ci95": [round(end, 4) for end in scores.interval95()],
                     "seconds_per_row": round(scores.seconds_per_row, 4)},
            "general": general, "device": device, "dtype": dtype, "seconds": round(time.perf_counter() - start, 1)}


def merge(recipe: Recipe, run: RunDir) -> dict:
    """Chapter 7's merge into a float32 base, saved as one model with merge.json (its answers against the adapter's)."""
    from helpers.evaluation import generate_answers
    from helpers.jsonl import read_jsonl
    from helpers.merging import merge_adapter, save_merged

    start = time.perf_counter()
    model, tokenizer = merge_adapter(run.adapter)
    result = {}
    if _eval_device(recipe) == ("cpu", "float32"):  # the same arithmetic as the test answers: they must agree
        # the test's first batch again, padded alike (padding changes the arithmetic, so it could tip a near tie)
        stored = read_jsonl(run.predictions)[:recipe.profile.eval_batch_size]
        answers = generate_answers(model, tokenizer, [p["instruction"] for p in stored],
                                   recipe.profile.eval_batch_size, progress=False)
        result["same_answers_as_adapter"] = f"{sum(a == p['answer'] for a, p in zip(answers, stored))}/{len(stored)}"
    with atomic_dir(run.merged) as tmp:
        save_merged(model, tokenizer, tmp)
        result["seconds"] = round(time.perf_counter() - start, 1)
        write_json(tmp / "merge.json", result)
    return result


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("torch", "transformers", "trl", "peft", "accelerate", "datasets", "bitsandbytes", "lm_eval",
                 "tensorboard", "deepspeed"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


def machine(recipe: Recipe) -> dict:
    from accelerate import PartialState

    from helpers.speed import cpu

    state = PartialState()
    found = {**cpu(), "processes": state.num_processes, "distributed": str(state.distributed_type.value)}
    if recipe.profile.device == "cuda":
        import torch

        props = torch.cuda.get_device_properties(0)
        found.update(accelerator=props.name, accelerator_memory_gib=round(props.total_memory / 2**30, 1),
                     gpus=torch.cuda.device_count())
    return found


def _stage(path: Path) -> dict | None:
    """A stage's stored result, or None when the stage has not finished."""
    return json.loads(path.read_text()) if path.is_file() else None


def run(recipe: Recipe, resume: bool = False, command: str = "") -> dict | None:
    """Every stage in turn, each skipped when its result is already there; returns run.json's content (main only)."""
    from accelerate import PartialState

    state = PartialState(cpu=recipe.profile.device == "cpu")
    main = state.is_main_process
    run_dir = RunDir(recipe.run_dir)
    state.wait_for_everyone()  # every process has checked the run's folder (check_run_dir) before one writes in it
    if main and not run_dir.recipe.is_file():
        write_json(run_dir.recipe, recipe.resolved())
    with state.main_process_first():  # the main process converts and curates; the others then find it written
        from helpers.models import base_model_dir

        base_model_dir(recipe.profile.model_id)
        splits, curation = prepare_data(recipe, run_dir)
    training = _stage(run_dir.training)
    if training is None:
        training = train(recipe, run_dir, splits, resume, main)
    elif main:
        print(f"training: done earlier ({show(run_dir.adapter)})", flush=True)
    state.wait_for_everyone()
    if not main:
        return None
    evaluation = _stage(run_dir.evaluation)
    if evaluation is None:
        evaluation = evaluate(recipe, run_dir, splits)
        write_json(run_dir.evaluation, evaluation)
    merging = _stage(run_dir.merging) or merge(recipe, run_dir)
    summary = {
        "date": time.strftime("%Y-%m-%d"),
        "command": command,
        "config": {**recipe.resolved(), "sft": training["sft_config"]},
        "versions": versions(),
        "machine": machine(recipe),
        "scores": {"test": evaluation["test"], "general": evaluation["general"],
                   "per_epoch": training["per_epoch"]},
        "training": {k: v for k, v in training.items() if k not in ("per_epoch", "seconds", "sft_config")},
        "stage_seconds": {"curate": curation.get("seconds", 0.0), "train": training["seconds"],
                          "evaluate": evaluation["seconds"], "merge": merging["seconds"]},
        "data": curation,
        "merge": merging,
        "artifacts": {name: show(getattr(run_dir, name)) for name in
                      ("adapter", "merged", "tensorboard", "predictions", "checkpoints")},
    }
    write_json(run_dir.summary, summary)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog="python -m helpers.train", description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True, type=Path, help="the recipe (YAML), e.g. recipes/tiny_cpu.yaml")
    parser.add_argument("--resume", action="store_true", help="continue the run in output_dir from where it stopped")
    parser.add_argument("--output-dir", default=None, help="the run's folder (replaces the recipe's output_dir)")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="any recipe or SFTConfig key, e.g. "
                        "num_train_epochs=1 learning_rate=5e-4")
    args = parser.parse_args(argv)
    from helpers.notebook import quiet_libraries

    quiet_libraries()
    recipe = load(args.config, args.overrides, args.output_dir)
    check_run_dir(RunDir(recipe.run_dir), recipe, args.resume)  # before anything is written
    words = argv if argv is not None else sys.argv[1:]
    command = shlex.join(["python", "-m", "helpers.train", *(show(w) if Path(w).is_absolute() else w for w in words)])
    summary = run(recipe, resume=args.resume, command=command)
    if summary is not None:
        test = summary["scores"]["test"]
        low, high = test["ci95"]
        general = ", ".join(f"{name} {scores['acc']:.3f}" for name, scores in summary["scores"]["general"].items())
        print(f"test exact match {test['exact_match']:.3f} (95 % interval {low:.3f}-{high:.3f}, {test['n']} rows)"
              f"{'; general: ' + general if general else ''}; summary in {show(RunDir(recipe.run_dir).summary)}")
    return 0


if __name__ == "__main__":
    # Under accelerate every process checks the recipe and would fail alike: each says why, since the launcher may
    # stop the main process before it could.
    raise SystemExit(run_cli(main))
