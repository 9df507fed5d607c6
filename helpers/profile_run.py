"""Chapter 4's recipe and chapter 4b's comparison in one profile, without Jupyter: a benchmark run.

    COURSE_PROFILE=gpu COURSE_MODEL=embedded python -m helpers.profile_run [--flavours full,lora,qlora]

For a machine where the notebooks are not the point (a rented GPU, a
colleague's workstation): it trains chapter 4's adapter with the profile's
recipe and chapter 4's own functions, scores the test split, reads the general
probe before and after from the per-epoch measurements, and then runs the
chapter 4b variants named by ``--flavours``, each in its own process. Every
figure lands in ``outputs/profile-runs/<profile>.json`` with the machine it
was measured on; the file is rewritten after each part, so a run cut short
keeps what it finished.

``--seeds 0,1,2`` trains chapter 4's run once per seed and records the
spread of its scores: one run is one draw, and a retrain with another seed
shows how far the test score moves when nothing but chance changed.

Every argument (the profile, the variants' names, the numbers, the report's
folder) is checked before anything trains: a typo costs a second, not the
headline run. A failed part is stored with its traceback, its paths made
relative (``helpers.paths.strip_paths``) so the report can be shared.
"""
from __future__ import annotations

import dataclasses
import json
import time
import traceback
from pathlib import Path

from helpers.atomic import write_json
from helpers.cli import Parser, integer, output_file, seed_list
from helpers.config import Profile, UnknownProfile
from helpers.errors import CourseError, run_cli, writing
from helpers.paths import OUTPUTS, strip_paths

RUNS_DIR = OUTPUTS / "profile-runs"


def machine(profile: Profile) -> dict:
    """What the figures were measured on: accelerator or CPU, and the library versions that matter."""
    import peft
    import torch
    import transformers
    import trl

    from helpers.speed import cpu
    from helpers.training import precision_summary

    found = {**cpu(), "torch": torch.__version__, "transformers": transformers.__version__,
             "peft": peft.__version__, "trl": trl.__version__, "precision": precision_summary(profile)}
    if profile.device == "cuda":
        props = torch.cuda.get_device_properties(0)
        found.update(accelerator=props.name, accelerator_memory_gib=round(props.total_memory / 2**30, 1),
                     cuda=torch.version.cuda)
    return found


def headline(profile: Profile, out_dir: Path, seed: int = 0) -> dict:
    """Chapter 4's run: train with per-epoch measurements, then score the whole test split.

    The test score is also given apart for the half of the rows least like
    any training phrasing of their code and for the other half, as chapter 5
    reports it, each with its 95 % interval.
    """
    from helpers.evaluation import by_novelty, nearest_train_similarity
    from helpers.flavours import measured, scored_on
    from helpers.training import load_split, loss_history, train_adapter

    with measured(profile.device) as cost:  # loading the model included
        trainer = train_adapter(profile, out_dir / "adapter", checkpoints=out_dir / "checkpoints", seed=seed)
    test_rows = load_split("test", profile)
    test = scored_on(trainer, trainer.processing_class, test_rows, profile.eval_batch_size)
    halves = by_novelty(test, nearest_train_similarity(test_rows, load_split("train", profile)))
    points = [e for e in trainer.state.log_history if "val_exact_match" in e or "general_acc" in e]
    general = [p["general_acc"] for p in points if "general_acc" in p]
    _, val_loss = loss_history(trainer)
    return {
        "model": profile.model_id,
        "seed": seed,
        "steps": trainer.state.global_step,
        "epochs_run": round(trainer.state.epoch or 0, 2),
        "train_minutes": cost["train_minutes"],  # the per-epoch measurements included, as in chapter 4
        "peak_memory_mb": cost["peak_memory_mb"],
        "memory_kind": cost["memory_kind"],
        "val_exact_match_per_epoch": [round(p["val_exact_match"], 4) for p in points if "val_exact_match" in p],
        "val_loss_per_epoch": [round(v, 4) for _, v in val_loss],
        "test_exact_match": round(test.exact_match, 4),
        "test_ci95": [round(end, 4) for end in test.interval95()],
        "test_rows": test.n,
        **{f"test_{key}": value for key, value in halves.items() if key != "median_similarity"},
        "test_format_compliance": round(test.format_compliance, 4),
        "general_before": general[0] if general else None,
        "general_after": general[-1] if general else None,
        "seconds_per_test_row": round(test.seconds_per_row, 4),
    }


def spread(runs: list[dict]) -> dict:
    """Lowest, mean and highest of each test score over runs of one recipe under different seeds.

    A score a run could not give (a half of a one-row test split is empty) is
    left out of that score's summary; ``None`` when no run gave it.
    """
    def summary(values):
        if not values:
            return None
        return {"min": min(values), "mean": round(sum(values) / len(values), 4), "max": max(values)}

    keys = ("test_exact_match", "test_unlike_exact_match", "test_like_exact_match")
    return {"seeds": [r["seed"] for r in runs],
            **{key: summary([r[key] for r in runs if r.get(key) is not None]) for key in keys}}


def run(profile: Profile, flavours: list[str], out: Path, headline_run: bool = True,
        seeds: tuple[int, ...] = (0,)) -> dict:
    """Every part in turn; a part that fails is recorded with its error and the next one still runs.

    One seed: the run is ``headline``. Several: ``headline:seed=<n>`` each,
    and ``across_seeds`` the spread of the ones that finished.
    """
    from helpers.flavours import compare

    out = Path(out)
    report = {"date": time.strftime("%Y-%m-%d"), "profile": profile.describe(), "machine": machine(profile)}

    def save():
        with writing(out):  # a full disk or a folder gone read-only: one line, not a traceback
            write_json(out, report)

    def attempt(key, part):
        start = time.perf_counter()
        try:
            report[key] = part()
        except Exception as exc:  # noqa: BLE001 - the report names the failure; the other parts are still worth having
            report[key] = {"error": strip_paths(f"{type(exc).__name__}: {exc}"[:2000]),
                           "traceback": strip_paths(traceback.format_exc()[-4000:])}
            print(f"{key} failed: {report[key]['error'].splitlines()[0]}", flush=True)
        print(f"{key}: {time.perf_counter() - start:.0f} s", flush=True)
        save()

    save()
    if headline_run and len(seeds) == 1:
        attempt("headline", lambda: headline(profile, out.parent / profile.name, seed=seeds[0]))
    elif headline_run:
        for seed in seeds:
            attempt(f"headline:seed={seed}",
                    lambda seed=seed: headline(profile, out.parent / f"{profile.name}-seed{seed}", seed=seed))
        finished = [part for part in (report[f"headline:seed={seed}"] for seed in seeds) if "error" not in part]
        if len(finished) > 1:
            report["across_seeds"] = spread(finished)
            save()
    for name in flavours:
        attempt(f"flavour:{name}", lambda name=name: compare([name], profile, out.parent / "compare")[name])
    return report


def main(argv: list[str] | None = None) -> int:
    from helpers.flavours import VARIANTS

    parser = Parser(prog="python -m helpers.profile_run", description=__doc__.split("\n")[0])
    parser.add_argument("--flavours", default="", help="chapter 4b variants to run after it, comma-separated "
                        f"({', '.join(VARIANTS)})")
    parser.add_argument("--no-headline", action="store_true", help="run only the --flavours variants")
    parser.add_argument("--epochs", type=integer(1, 1000), default=None, help="train chapter 4's run this many epochs "
                        "instead of the profile's (a quick check that a profile runs end to end)")
    parser.add_argument("--seeds", type=seed_list, default=(0,), help="train chapter 4's run once per seed, "
                        "comma-separated (several: the report gives the spread of the scores)")
    parser.add_argument("--out", type=output_file, default=None, help="default: outputs/profile-runs/<profile>.json")
    args = parser.parse_args(argv)
    flavours = [name.strip() for name in args.flavours.split(",") if name.strip()]
    unknown = [name for name in flavours if name not in VARIANTS]
    if unknown:
        raise CourseError(f"--flavours: unknown variant {unknown[0]!r}; choose from {', '.join(VARIANTS)}")
    if args.no_headline and not flavours:
        raise CourseError("--no-headline without --flavours: nothing to run")
    from helpers.config import get_profile

    try:
        name = get_profile().name  # COURSE_PROFILE, checked before the set-up converts or loads anything
    except UnknownProfile as exc:
        raise CourseError(str(exc)) from None
    out = args.out or output_file(str(RUNS_DIR / f"{name}.json"))
    from helpers.notebook import setup

    profile = setup()
    if args.epochs:
        profile = dataclasses.replace(profile, epochs=args.epochs)
    report = run(profile, flavours, out, headline_run=not args.no_headline, seeds=args.seeds)
    failed = [key for key, part in report.items() if isinstance(part, dict) and "error" in part]
    print(json.dumps(report.get("across_seeds") or {k: v for k, v in report.get("headline", {}).items()
                                                    if k != "traceback"}))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
