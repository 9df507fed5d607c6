import json
import sys

from tests.conftest import ROOT


def run(out_dir, mode):
    import os
    import subprocess

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, str(ROOT / "tests" / "resume_run.py"), str(out_dir), mode],
                          env=env, capture_output=True, text=True, timeout=900)


def fresh_and_resumed(tmp_path, suffix=""):
    """An uninterrupted run, and one SIGKILLed after its step-4 checkpoint then resumed: their final JSON lines."""
    fresh = run(tmp_path / "fresh", "fresh" + suffix)
    assert fresh.returncode == 0, fresh.stderr[-2000:]
    killed = run(tmp_path / "killed", "kill-at-4" + suffix)
    assert killed.returncode == -9  # SIGKILL: no chance to clean up
    assert sorted(p.name for p in (tmp_path / "killed").glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]
    resumed = run(tmp_path / "killed", "resume" + suffix)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    return json.loads(fresh.stdout.strip().splitlines()[-1]), json.loads(resumed.stdout.strip().splitlines()[-1])


def test_a_run_killed_mid_training_resumes_to_the_same_result(tmp_path, base):
    a, b = fresh_and_resumed(tmp_path)
    assert a["steps"] == b["steps"] == 8
    assert abs(a["last_loss"] - b["last_loss"]) < 1e-3
    assert abs(a["weights_sum"] - b["weights_sum"]) < 1e-3 * max(1.0, abs(a["weights_sum"]))
    assert abs(a["weights_abs"] - b["weights_abs"]) < 1e-3 * a["weights_abs"]


def test_chapter_4s_run_killed_after_an_epoch_keeps_its_curves_and_its_early_stopping_count(tmp_path, base):
    a, b = fresh_and_resumed(tmp_path, "-epochs")
    # Patience 2 after the best epoch (1) stops at epoch 3 = step 6 in both; a count lost in the kill would run to 8.
    assert a["steps"] == b["steps"] == 6
    assert a["best_metric"] == b["best_metric"]
    # The per-epoch points measured before the kill are still there: the base, epochs 1 and 2, then epoch 3.
    assert [p["step"] for p in b["history"]] == [p["step"] for p in a["history"]] == [0, 2, 4, 6]
    assert [p.get("val_exact_match") for p in b["history"]] == [p.get("val_exact_match") for p in a["history"]]
    assert [p["general_acc"] for p in b["history"]] == [p["general_acc"] for p in a["history"]]
