"""``python -m helpers.profile_run``: chapter 4's recipe as a benchmark run, one report file per profile."""
import dataclasses
import json

import pytest

from helpers.config import get_profile
from helpers.errors import run_cli
from helpers.profile_run import main, run, spread
from helpers.training import load_split


def test_a_small_run_reports_its_figures_and_a_failed_part_does_not_stop_the_rest(tmp_path):
    profile = dataclasses.replace(get_profile("ci"), codes=2, epochs=2, probe_limit=8, patience=None,
                                  mmlu_per_epoch=None, lora_top_layers=2)
    out = tmp_path / "runs" / "ci.json"
    report = run(profile, ["no-such-variant"], out)

    assert json.loads(out.read_text()) == report  # the file holds what was returned
    assert report["profile"]["codes"] == 2 and report["machine"]["cores"] >= 1
    headline = report["headline"]
    assert headline["epochs_run"] == 2 and headline["steps"] > 0
    assert len(headline["val_exact_match_per_epoch"]) == 2 and len(headline["val_loss_per_epoch"]) == 2
    assert headline["test_rows"] == len(load_split("test", profile))
    assert 0.0 <= headline["test_exact_match"] <= 1.0
    low, high = headline["test_ci95"]
    assert low <= headline["test_exact_match"] <= high
    # the halves least and most like training, as chapter 5 reports them, cover the test split between them
    assert headline["test_unlike_n"] + headline["test_like_n"] == headline["test_rows"]
    assert headline["test_unlike_n"] * headline["test_unlike_exact_match"] + headline["test_like_n"] * \
        headline["test_like_exact_match"] == pytest.approx(headline["test_rows"] * headline["test_exact_match"],
                                                            abs=0.01)
    assert headline["seed"] == 0
    assert 0.0 < headline["general_before"] <= 1.0 and 0.0 < headline["general_after"] <= 1.0
    assert headline["memory_kind"] == "resident memory (peak RSS)" and headline["peak_memory_mb"] > 100
    assert (tmp_path / "runs" / "ci" / "adapter" / "adapter_config.json").is_file()
    # the unknown variant fails on its own; its error is in the report, and the run still returned
    failed = report["flavour:no-such-variant"]
    assert "unknown variant 'no-such-variant'" in failed["error"]
    # the stored traceback names files relative to the repository or the package, never by absolute path
    assert 'File "helpers/profile_run.py"' in failed["traceback"] and 'File "/' not in failed["traceback"]


def test_several_seeds_are_separate_runs_and_the_report_gives_their_spread(tmp_path):
    profile = dataclasses.replace(get_profile("ci"), codes=2, epochs=1, probe_limit=8, patience=None,
                                  mmlu_per_epoch=None, lora_top_layers=2)
    report = run(profile, [], tmp_path / "runs" / "ci.json", seeds=(0, 1))

    first, second = report["headline:seed=0"], report["headline:seed=1"]
    assert (first["seed"], second["seed"]) == (0, 1) and "headline" not in report
    # another seed is another draw of the adapter's start and the row order: training went differently
    assert first["val_loss_per_epoch"] != second["val_loss_per_epoch"]
    for seed in (0, 1):
        assert (tmp_path / "runs" / f"ci-seed{seed}" / "adapter" / "adapter_config.json").is_file()
    assert report["across_seeds"] == spread([first, second])
    across = report["across_seeds"]["test_exact_match"]
    assert across["min"] == min(first["test_exact_match"], second["test_exact_match"])
    assert across["max"] == max(first["test_exact_match"], second["test_exact_match"])
    assert across["min"] <= across["mean"] <= across["max"]


def test_spread_summarises_each_score():
    runs = [{"seed": s, "test_exact_match": em, "test_unlike_exact_match": u, "test_like_exact_match": k}
            for s, em, u, k in [(0, 0.8, 0.7, 0.9), (1, 0.9, 0.8, 1.0), (2, 0.85, 0.75, 0.95)]]
    assert spread(runs) == {"seeds": [0, 1, 2],
                            "test_exact_match": {"min": 0.8, "mean": 0.85, "max": 0.9},
                            "test_unlike_exact_match": {"min": 0.7, "mean": 0.75, "max": 0.8},
                            "test_like_exact_match": {"min": 0.9, "mean": 0.95, "max": 1.0}}
    # one-row test splits have an empty half: that score has no summary, the others still do
    tiny = [{**run, "test_unlike_exact_match": None} for run in runs]
    assert spread(tiny)["test_unlike_exact_match"] is None
    assert spread(tiny)["test_exact_match"] == {"min": 0.8, "mean": 0.85, "max": 0.9}


@pytest.mark.parametrize("seeds, message", [("0,x", "give whole numbers separated by commas"),
                                            ("1,1", "a seed is repeated")])
def test_bad_seeds_are_refused_in_one_line(seeds, message, capsys):
    assert run_cli(main, ["--seeds", seeds]) == 2
    err = capsys.readouterr().err
    assert message in err and err.startswith("error: ") and err.count("\n") == 1


def test_stored_tracebacks_keep_no_absolute_path():
    from pathlib import Path

    from helpers.paths import ROOT, strip_paths

    home = Path.home()
    text = (f'  File "{ROOT}/helpers/flavours.py", line 176, in compare\n'
            f'  File "/usr/lib/python3/site-packages/transformers/trainer.py", line 2, in train\n'
            f'  File "{home}/notebooks/run.py", line 3\n'
            "FileNotFoundError: [Errno 2] No such file or directory: '/tmp/run-7/data.jsonl' (1/2 done, see "
            "https://example.org/a/b)")
    assert strip_paths(text) == (
        '  File "helpers/flavours.py", line 176, in compare\n'
        '  File "transformers/trainer.py", line 2, in train\n'
        + ('  File "~/notebooks/run.py", line 3\n' if str(home) != "/" else '  File "run.py", line 3\n')
        + "FileNotFoundError: [Errno 2] No such file or directory: 'data.jsonl' (1/2 done, see https://example.org/a/b)")
