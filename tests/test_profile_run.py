"""``python -m helpers.profile_run``: chapter 4's recipe as a benchmark run, one report file per profile."""
import dataclasses
import json

from helpers.config import get_profile
from helpers.profile_run import run
from helpers.training import load_split


def test_a_small_run_reports_its_figures_and_a_failed_part_does_not_stop_the_rest(tmp_path):
    profile = dataclasses.replace(get_profile("ci"), codes=2, epochs=2, probe_limit=8, patience=None)
    out = tmp_path / "runs" / "ci.json"
    report = run(profile, ["no-such-variant"], out)

    assert json.loads(out.read_text()) == report  # the file holds what was returned
    assert report["profile"]["codes"] == 2 and report["machine"]["cores"] >= 1
    headline = report["headline"]
    assert headline["epochs_run"] == 2 and headline["steps"] > 0
    assert len(headline["val_exact_match_per_epoch"]) == 2 and len(headline["val_loss_per_epoch"]) == 2
    assert headline["test_rows"] == len(load_split("test", profile))
    assert 0.0 <= headline["test_exact_match"] <= 1.0
    assert 0.0 < headline["general_before"] <= 1.0 and 0.0 < headline["general_after"] <= 1.0
    assert headline["memory_kind"] == "resident memory (peak RSS)" and headline["peak_memory_mb"] > 100
    assert (tmp_path / "runs" / "ci" / "adapter" / "adapter_config.json").is_file()
    # the unknown variant fails on its own; its error is in the report, and the run still returned
    assert "unknown variant 'no-such-variant'" in report["flavour:no-such-variant"]["error"]
