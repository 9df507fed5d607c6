from pathlib import Path

from helpers.benchmarks import general_probe, hub_benchmarks, probe_task_config
from helpers.paths import PROBE_DATASET


def test_probe_task_points_at_the_shipped_items():
    config = probe_task_config()
    assert config["task"] == "course_general_probe"
    assert Path(config["dataset_kwargs"]["data_files"]["test"]) == PROBE_DATASET.resolve()


def test_probe_has_enough_balanced_items():
    import json

    items = [json.loads(line) for line in PROBE_DATASET.read_text().splitlines()]
    assert len(items) >= 200
    assert {i["answer"] for i in items} == {0, 1, 2, 3}
    assert all(len(i["choices"]) == 4 for i in items)


def test_probe_runs_through_lm_eval_on_the_embedded_model(base):
    model, tokenizer = base
    scores = general_probe(model, tokenizer, limit=12, batch_size=12)
    assert scores["n"] == 12
    assert 0.0 <= scores["acc"] <= 1.0 and 0.0 <= scores["acc_norm"] <= 1.0


def test_the_base_model_scores_clearly_above_chance_on_the_whole_probe(base):
    # A probe the base model answers at chance could not show forgetting: there would be nothing to lose.
    # Four choices per item make chance 25 %; over 240 items one standard error is about 3 points, so 45 %
    # is far outside what guessing gives (the embedded model scores about 60 %).
    model, tokenizer = base
    scores = general_probe(model, tokenizer, batch_size=32)
    assert scores["n"] >= 200
    assert scores["acc"] >= 0.45, scores


def test_hub_benchmarks_are_skipped_offline_with_a_message(base, capsys, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert hub_benchmarks(*base) is None
    assert "skipped" in capsys.readouterr().out


def test_standard_tasks_before_and_after_give_the_change_per_task(monkeypatch):
    import helpers.benchmarks as benchmarks

    scores = {"base": {"arc_easy": {"acc": 0.5, "acc_norm": 0.4}, "piqa": {"acc": 0.6}},
              "tuned": {"arc_easy": {"acc": 0.45, "acc_norm": 0.4}, "piqa": {"acc": 0.625}}}
    monkeypatch.setattr(benchmarks, "hub_benchmarks", lambda model, tokenizer, **kw: scores[model])
    table = benchmarks.hub_benchmarks_before_after("base", "tuned", tokenizer=None)
    assert table == {"arc_easy": {"base": 0.5, "fine-tuned": 0.45, "change": -0.05},
                     "piqa": {"base": 0.6, "fine-tuned": 0.625, "change": 0.025}}


def test_standard_tasks_before_and_after_are_skipped_offline_with_one_message(base, capsys, monkeypatch):
    from huggingface_hub import constants

    from helpers.benchmarks import hub_benchmarks_before_after

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    model, tokenizer = base
    assert hub_benchmarks_before_after(model, model, tokenizer) is None
    assert capsys.readouterr().out.count("skipped") == 1


def test_every_standard_task_is_known_to_lm_eval():
    # Catches a renamed or misspelt task offline, before a Colab user meets it.
    from helpers.benchmarks import HUB_TASKS, task_manager

    known = set(task_manager().all_tasks)
    assert set(HUB_TASKS) <= known, set(HUB_TASKS) - known
