import json
import sys

from tests.conftest import ROOT


def run(out_dir, mode):
    import os
    import subprocess

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, str(ROOT / "tests" / "resume_run.py"), str(out_dir), mode],
                          env=env, capture_output=True, text=True, timeout=900)


def test_a_run_killed_mid_training_resumes_to_the_same_result(tmp_path, base):
    fresh = run(tmp_path / "fresh", "fresh")
    assert fresh.returncode == 0, fresh.stderr[-2000:]
    killed = run(tmp_path / "killed", "kill-at-4")
    assert killed.returncode == -9  # SIGKILL: no chance to clean up
    assert sorted(p.name for p in (tmp_path / "killed").glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]
    resumed = run(tmp_path / "killed", "resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a, b = json.loads(fresh.stdout.strip().splitlines()[-1]), json.loads(resumed.stdout.strip().splitlines()[-1])
    assert a["steps"] == b["steps"] == 8
    assert abs(a["last_loss"] - b["last_loss"]) < 1e-3
    assert abs(a["weights_sum"] - b["weights_sum"]) < 1e-3 * max(1.0, abs(a["weights_sum"]))
    assert abs(a["weights_abs"] - b["weights_abs"]) < 1e-3 * a["weights_abs"]
