import json
import sys

import pytest

from tests.conftest import ROOT


def run(out_dir, mode):
    import os
    import subprocess

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, str(ROOT / "tests" / "resume_run.py"), str(out_dir), mode],
                          env=env, capture_output=True, text=True, timeout=900)


def last_line(result) -> dict:
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    """The uninterrupted run of a mode ("" or "-epochs"), run once for the module: its final JSON line."""
    done = {}

    def get(suffix: str = "") -> dict:
        if suffix not in done:
            done[suffix] = last_line(run(tmp_path_factory.mktemp("fresh"), "fresh" + suffix))
        return done[suffix]

    return get


def fresh_and_resumed(tmp_path, fresh, suffix=""):
    """An uninterrupted run, and one SIGKILLed after its step-4 checkpoint then resumed: their final JSON lines."""
    killed = run(tmp_path / "killed", "kill-at-4" + suffix)
    assert killed.returncode == -9  # SIGKILL: no chance to clean up
    assert sorted(p.name for p in (tmp_path / "killed").glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]
    return fresh(suffix), last_line(run(tmp_path / "killed", "resume" + suffix))


def same_result(a: dict, b: dict) -> None:
    assert a["steps"] == b["steps"] == 8
    assert abs(a["last_loss"] - b["last_loss"]) < 1e-3
    assert abs(a["weights_sum"] - b["weights_sum"]) < 1e-3 * max(1.0, abs(a["weights_sum"]))
    assert abs(a["weights_abs"] - b["weights_abs"]) < 1e-3 * a["weights_abs"]


def test_a_run_killed_mid_training_resumes_to_the_same_result(tmp_path, fresh, base):
    same_result(*fresh_and_resumed(tmp_path, fresh))


def test_a_run_killed_while_saving_a_checkpoint_resumes_from_the_one_before(tmp_path, fresh, base):
    from helpers.training import complete_checkpoint, last_checkpoint

    out = tmp_path / "killed"
    killed = run(out, "kill-in-save-at-4")
    assert killed.returncode == -9
    half = out / "checkpoint-4"
    assert (half / "adapter_model.safetensors").is_file() and (half / "optimizer.pt").is_file()
    assert not (half / "trainer_state.json").exists() and not complete_checkpoint(half)
    # the highest number is the half-written one: resuming from it would fail; the step-2 checkpoint is whole
    assert last_checkpoint(out) == str(out / "checkpoint-2")
    same_result(fresh(), last_line(run(out, "resume")))


def test_chapter_4s_run_killed_after_an_epoch_keeps_its_curves_and_its_early_stopping_count(tmp_path, fresh, base):
    a, b = fresh_and_resumed(tmp_path, fresh, "-epochs")
    # Patience 2 after the best epoch (1) stops at epoch 3 = step 6 in both; a count lost in the kill would run to 8.
    assert a["steps"] == b["steps"] == 6
    assert a["best_metric"] == b["best_metric"]
    # The per-epoch points measured before the kill are still there: the base, epochs 1 and 2, then epoch 3.
    assert [p["step"] for p in b["history"]] == [p["step"] for p in a["history"]] == [0, 2, 4, 6]
    assert [p.get("val_exact_match") for p in b["history"]] == [p.get("val_exact_match") for p in a["history"]]
    assert [p["general_acc"] for p in b["history"]] == [p["general_acc"] for p in a["history"]]
