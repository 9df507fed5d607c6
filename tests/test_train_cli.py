"""python -m helpers.train end to end on recipes/tiny_cpu.yaml: one process, killed and resumed, and DDP (accelerate).

The tiny recipe trains 2 epochs of 6 steps (8 rows a step, the last short batch dropped) on 2 codes. The 2-process
launch gives each process 4 rows a step: the same 8 rows a step as the single process, so its losses must be the
single run's.
"""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT

TINY = ROOT / "recipes" / "tiny_cpu.yaml"
#: train-loss agreement between the 2-process and the 1-process run, step by step: both sum the same token losses
#: over the same 8 rows, split over two processes, so float32 rounding alone separates them (1e-5 on 2026-12-02)
LOSS_TOLERANCE = 1e-3


def train_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "helpers.train", "--config", str(TINY), *args]


def env() -> dict:
    # One thread per process, as accelerate's launcher gives each of its processes: the 1- and 2-process runs then
    # compute alike, and a process never waits for a second thread on a machine busy with other work.
    return {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}


def run(command: list[str], timeout: int = 1500) -> subprocess.CompletedProcess:
    done = subprocess.run(command, cwd=ROOT, env=env(), capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:])
    return done


def losses(run_dir: Path) -> list[float]:
    return [loss for _, loss in json.loads((run_dir / "run.json").read_text())["training"]["train_loss"]]


@pytest.fixture(scope="module")
def single(tmp_path_factory, base):
    """The tiny recipe in one process, uninterrupted."""
    out = tmp_path_factory.mktemp("single") / "run"
    done = run(train_command("--output-dir", str(out)))
    return out, done


def test_one_run_leaves_every_artifact_and_a_summary_without_absolute_paths(single):
    out, done = single
    summary = json.loads((out / "run.json").read_text())
    assert "test exact match" in done.stdout
    test = summary["scores"]["test"]
    assert test["n"] > 0 and 0.0 <= test["ci95"][0] <= test["exact_match"] <= test["ci95"][1] <= 1.0
    assert 0.0 <= summary["scores"]["general"]["probe"]["acc"] <= 1.0
    assert [p["step"] for p in summary["scores"]["per_epoch"]] == [0, 6, 12]  # the base, then each epoch
    assert summary["training"]["steps"] == 12 and len(summary["training"]["train_loss"]) == 12
    assert [step for step, _ in summary["training"]["val_loss"]] == [6, 12]  # the validation pass ran each epoch
    assert set(summary["stage_seconds"]) == {"curate", "train", "evaluate", "merge"}
    assert {"torch", "transformers", "trl", "peft", "accelerate"} <= summary["versions"].keys()
    assert summary["machine"]["cores"] >= 1 and summary["machine"]["processes"] == 1
    assert summary["config"]["profile"]["codes"] == 2 and summary["config"]["set"]["lora_r"] == 8
    same, compared = summary["merge"]["same_answers_as_adapter"].split("/")
    assert same == compared  # merging changed no answer
    for path in ("adapter/adapter_model.safetensors", "adapter/training.json", "merged/model.safetensors",
                 "merged/config.json", "test_predictions.jsonl", "evaluation.json", "recipe.json"):
        assert (out / path).is_file(), path
    assert str(ROOT) not in (out / "run.json").read_text() and str(out.parent) not in (out / "run.json").read_text()
    assert not list(out.rglob("*.partial"))  # every atomic write finished


def test_tensorboard_receives_the_per_epoch_val_exact_match_and_general_score(single):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out, _ = single
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "train/val_exact_match", "train/general_acc", "eval/loss"} <= tags
    assert [e.step for e in events.Scalars("train/val_exact_match")] == [6, 12]
    assert [e.step for e in events.Scalars("train/general_acc")] == [0, 6, 12]
    summary = json.loads((out / "run.json").read_text())
    stored = [p["val_exact_match"] for p in summary["scores"]["per_epoch"] if "val_exact_match" in p]
    assert [pytest.approx(e.value) for e in events.Scalars("train/val_exact_match")] == stored


def test_a_run_killed_mid_training_resumes_to_the_merged_model_and_run_json(single, tmp_path):
    out = tmp_path / "run"
    process = subprocess.Popen(train_command("--output-dir", str(out)), cwd=ROOT, env=env(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = out / "checkpoints" / "checkpoint-6" / "trainer_state.json"  # written last in a checkpoint
    deadline = time.time() + 1500
    while not first.is_file() and process.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    assert first.is_file() and process.poll() is None, "the run ended before its first checkpoint"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert not (out / "adapter").exists() and not (out / "run.json").exists()  # killed mid-training
    # Without --resume the folder is refused: a fresh run would mix its checkpoints with the killed one's.
    refused = subprocess.run(train_command("--output-dir", str(out)), cwd=ROOT, env=env(), capture_output=True,
                             text=True, timeout=600)
    assert refused.returncode == 2 and "pass --resume" in refused.stderr
    run(train_command("--output-dir", str(out), "--resume"))
    summary = json.loads((out / "run.json").read_text())
    assert summary["training"]["resumed_from"].endswith("checkpoint-6") and summary["training"]["steps"] == 12
    assert (out / "merged" / "model.safetensors").is_file()
    # The resumed run ends where the uninterrupted one did.
    assert losses(out)[-1] == pytest.approx(losses(single[0])[-1], abs=1e-3)


def test_two_processes_under_accelerate_train_like_one_and_write_one_set_of_artifacts(single, tmp_path):
    out = tmp_path / "run"
    accelerate = Path(sys.executable).parent / "accelerate"
    # --multi_gpu selects accelerate's torchrun launcher; the recipe's CPU profile makes each process train on the
    # CPU with gloo. (accelerate's --cpu flag starts several CPU processes only through mpirun and a host file.)
    done = run([str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "helpers.train", "--config", str(TINY),
                "--output-dir", str(out), "per_device_train_batch_size=4"])
    summary = json.loads((out / "run.json").read_text())
    assert summary["machine"]["processes"] == 2 and summary["training"]["processes"] == 2
    assert summary["training"]["steps"] == 12  # 4 rows a step on each process: 8 a step, as in one process
    ddp, one = losses(out), losses(single[0])
    assert len(ddp) == len(one) and max(abs(a - b) for a, b in zip(ddp, one)) <= LOSS_TOLERANCE, (ddp, one)
    # One set of artifacts: the main process alone writes and prints.
    assert len(list(tmp_path.rglob("run.json"))) == 1 and len(list(tmp_path.rglob("training.json"))) == 1
    assert sorted(p.name for p in (out / "checkpoints").iterdir() if p.is_dir()) == ["checkpoint-12", "checkpoint-6"]
    assert len(list((out / "tensorboard").rglob("events.out.tfevents.*"))) == 1
    assert done.stdout.count("test exact match") == 1


def test_accelerates_cpu_flag_runs_the_recipe_in_one_process(tmp_path):
    # The command a team types first on a laptop. accelerate's --cpu launcher starts several processes only through
    # mpirun, so this trains in one (recipes/README.md says so); the day a release starts two, this test tells.
    out = tmp_path / "run"
    accelerate = Path(sys.executable).parent / "accelerate"
    run([str(accelerate), "launch", "--cpu", "--num_processes", "2", "--mixed_precision", "no", "--dynamo_backend",
         "no", "-m", "helpers.train", "--config", str(TINY), "--output-dir", str(out)])
    summary = json.loads((out / "run.json").read_text())
    assert summary["training"]["processes"] == 1 and summary["training"]["steps"] == 12
    assert (out / "merged" / "model.safetensors").is_file()


def test_a_teams_own_jsonl_is_curated_into_the_run_folder_and_trained_on(tmp_path):
    """recipes/own_data_example.yaml: raw rows -> chapter 1's rules -> splits in <run>/data -> a run (here 1 epoch on the
    top 2 blocks, without MMLU: the path, not the score)."""
    out = tmp_path / "run"
    run([sys.executable, "-m", "helpers.train", "--config", str(ROOT / "recipes" / "own_data_example.yaml"),
         "--output-dir", str(out), "num_train_epochs=1", "probe_limit=4", "mmlu_per_epoch=null", "lora_top_layers=2"])
    curation = json.loads((out / "data" / "curation.json").read_text())
    assert curation["input_rows"] == 40 and curation["kept"] + curation["rejected"] == 40
    assert {"train.jsonl", "val.jsonl", "test.jsonl", "rejects.jsonl", "report.json"} <= \
        {p.name for p in (out / "data").iterdir()}
    summary = json.loads((out / "run.json").read_text())
    assert summary["data"] == curation and summary["stage_seconds"]["curate"] == curation["seconds"]
    assert summary["scores"]["test"]["n"] == curation["splits_rows"]["test"]
    assert summary["training"]["train_rows"] == curation["splits_rows"]["train"]
