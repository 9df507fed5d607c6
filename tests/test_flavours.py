"""Chapter 4b's shared budget and its guard rails (the training itself runs under nbval in 04b)."""
import dataclasses

import pytest

from helpers.config import PROFILES
from helpers.flavours import VARIANTS, compare, compare_profile, measured, table


@pytest.mark.parametrize("name", list(PROFILES))
def test_every_variant_gets_the_same_smaller_budget_at_a_constant_rate(name):
    profile = PROFILES[name]
    budget = compare_profile(profile)
    assert (budget.codes, budget.epochs, budget.probe_limit) == (
        profile.compare_codes, profile.compare_epochs, profile.compare_probe_items)
    # equal epochs for every variant: nothing stops early, and nothing decays over a few dozen steps
    assert budget.patience is None
    assert budget.lr_schedule == "constant_with_warmup"
    # MMLU before and after each variant where the profile asks for it (ci does not: a minute a variant)
    assert budget.mmlu_per_epoch == (profile.mmlu_per_epoch if profile.compare_mmlu else None)
    unchanged = {"codes", "epochs", "probe_limit", "patience", "lr_schedule", "mmlu_per_epoch"}
    for field in dataclasses.fields(profile):
        if field.name not in unchanged:
            assert getattr(budget, field.name) == getattr(profile, field.name), field.name


def test_an_unknown_variant_is_refused_before_anything_trains(tmp_path):
    with pytest.raises(ValueError, match="unknown variant 'lora-r64'; choose from full, lora"):
        compare(["lora-r64"], PROFILES["ci"], out_dir=tmp_path)
    assert not list(tmp_path.iterdir())


def test_the_table_has_one_row_per_variant_with_the_measured_columns():
    rows = [{"label": VARIANTS[name].label, "trainable_params": 1, "peak_memory_mb": 2.0, "train_minutes": 3.0,
             "val_exact_match": 0.5, "val_format": 1.0, "val_billable": 0.75, "val_stale_answers": 1,
             "general_before": 0.6, "general_after": 0.55, "general_change": -0.05, "history": []}
            for name in ("full", "lora")]
    frame = table(rows)
    assert list(frame.index) == ["full fine-tuning", "LoRA (chapter 4's adapter)"]
    assert "history" not in frame.columns and frame.loc["full fine-tuning", "val_billable"] == 0.75
    # the test split is chapter 5's, scored once for the chosen recipe: no variant reports it
    assert not [c for c in frame.columns if c.startswith("test")]


def test_every_variant_takes_the_steps_of_the_curated_rows_on_the_defect_codes():
    from helpers.flavours import COMPARE_CODES, compare_rows, equal_steps

    budget = compare_profile(PROFILES["cpu"])
    curated, uncurated = compare_rows("train", budget), compare_rows("train_uncurated", budget)
    assert {r["code"] for r in curated} == set(COMPARE_CODES[: budget.codes])
    assert len(uncurated) > len(curated)  # duplicates and defects: more rows, but not more steps
    assert equal_steps(budget) == budget.epochs * -(-len(curated) // (budget.batch_size * budget.grad_accum))
    # the uncurated rows carry the stale codes the comparison counts in the answers
    from helpers.chat import extract_code
    from helpers.icd10 import STALE_CODES

    assert any(extract_code(r["response"]) in STALE_CODES for r in uncurated)


def test_stale_answers_and_the_constant_answer_floor():
    from helpers.evaluation import score
    from helpers.flavours import constant_answer_rate, stale_answers

    rows = [{"instruction": f"q{i}", "response": f"DIAGNOSIS_CODE: {c}", "code": c}
            for i, c in enumerate(["M54.50", "M54.50", "M54.50", "R51.9"])]
    scores = score(rows, ["DIAGNOSIS_CODE: M54.5", "DIAGNOSIS_CODE: M54.50", "DIAGNOSIS_CODE: R51", "nonsense"])
    assert stale_answers(scores) == 2
    assert constant_answer_rate(rows) == 0.75


def test_measured_fills_in_time_and_the_peak_memory_after_its_block(monkeypatch):
    import helpers.flavours as flavours

    clock = iter([100.0, 220.0])  # the block takes two minutes
    monkeypatch.setattr(flavours.time, "perf_counter", lambda: next(clock))
    peaks = iter([(2048.04, "resident memory (peak RSS)")])
    monkeypatch.setattr(flavours, "peak_memory_mb", lambda device: next(peaks))
    with measured("cpu") as cost:
        assert cost == {}  # filled in only when the block ends
    assert cost == {"train_minutes": 2.0, "peak_memory_mb": 2048.0, "memory_kind": "resident memory (peak RSS)"}


def test_measured_lets_a_failure_through_and_reports_nothing():
    with pytest.raises(RuntimeError, match="out of memory"):
        with measured("cpu") as cost:
            raise RuntimeError("out of memory")
    assert cost == {}
