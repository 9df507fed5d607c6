import json

import pytest

from helpers.evaluate import read_eval_rows
from helpers.errors import CourseError
from helpers.paths import BASE_MODEL_DIR
from tests.conftest import run_module

ROWS = [
    {"instruction": "My lower back has been aching since yesterday.", "response": "DIAGNOSIS_CODE: M54.50"},
    {"instruction": "I keep coughing day and night.", "response": "DIAGNOSIS_CODE: R05.9"},
]


def write_rows(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def adapter_dir(tmp_path_factory, base):
    """An untrained LoRA adapter saved the way chapter 4 saves one (base recorded by id)."""
    from peft import get_peft_model

    from helpers.config import EMBEDDED_MODEL
    from helpers.lora import lora_config

    model, tokenizer = base
    peft_model = get_peft_model(model, lora_config(r=4, alpha=8))
    for config in peft_model.peft_config.values():
        config.base_model_name_or_path = EMBEDDED_MODEL
    out = tmp_path_factory.mktemp("adapter")
    peft_model.save_pretrained(out, save_embedding_layers=False)
    tokenizer.save_pretrained(out)
    peft_model.unload()
    return out


def test_cli_scores_a_model_directory_and_prints_exact_match_last(tmp_path, base):
    data = write_rows(tmp_path / "rows.jsonl", ROWS)
    preds = tmp_path / "preds.jsonl"
    result = run_module("helpers.evaluate", "--model", str(BASE_MODEL_DIR), "--data", str(data),
                        "--predictions", str(preds))
    assert result.returncode == 0, result.stderr
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("exact_match: ") and last.endswith("(n=2)")
    assert 0.0 <= float(last.split()[1]) <= 1.0
    written = [json.loads(line) for line in preds.read_text().splitlines()]
    assert [w["reference"] for w in written] == ["M54.50", "R05.9"]
    assert all(set(w) >= {"instruction", "answer", "predicted", "correct"} for w in written)


def test_cli_loads_an_adapter_directory_through_its_recorded_base(tmp_path, adapter_dir):
    data = write_rows(tmp_path / "rows.jsonl", ROWS[:1])
    result = run_module("helpers.evaluate", "--model", str(adapter_dir), "--data", str(data),
                        "--predictions", str(tmp_path / "p.jsonl"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1].endswith("(n=1)")


@pytest.mark.parametrize("setup, message", [
    (lambda d: ("--model", str(d / "no-model"), "--data", str(write_rows(d / "r.jsonl", ROWS))), "does not exist"),
    (lambda d: ("--model", str(BASE_MODEL_DIR), "--data", str(write_rows(d / "empty.jsonl", []))), "no rows"),
    (lambda d: ("--model", str(BASE_MODEL_DIR), "--data",
                str(write_rows(d / "r.jsonl", [{"instruction": "a cough"}]))), "r.jsonl:1: row has no 'response'"),
    (lambda d: ("--model", str(BASE_MODEL_DIR), "--data", str(d / "missing.jsonl")), "missing.jsonl: no such file"),
])
def test_cli_bad_input_is_a_one_line_error(tmp_path, setup, message):
    result = run_module("helpers.evaluate", *setup(tmp_path))
    assert result.returncode == 2
    assert message in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_malformed_json_names_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(ROWS[0]) + "\n{oops\n")
    with pytest.raises(CourseError, match=r"bad.jsonl:2: not valid JSON"):
        read_eval_rows(path)


def test_response_without_a_code_is_refused(tmp_path):
    path = write_rows(tmp_path / "r.jsonl", [{"instruction": "x", "response": "back pain"}])
    with pytest.raises(CourseError, match="r.jsonl:1: response is not 'DIAGNOSIS_CODE: <code>'"):
        read_eval_rows(path)


def test_cli_general_flag_runs_the_probe_and_keeps_exact_match_last(tmp_path, base):
    data = write_rows(tmp_path / "rows.jsonl", ROWS[:1])
    result = run_module("helpers.evaluate", "--model", str(BASE_MODEL_DIR), "--data", str(data),
                        "--predictions", str(tmp_path / "p.jsonl"), "--general", "--general-limit", "8",
                        "--mmlu", "mmlu_ci")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[-3].startswith("mmlu: mmlu_ci ") and lines[-3].endswith("n=50)")
    assert lines[-2].startswith("general_probe_acc: ") and lines[-2].endswith("(n=8)")
    assert 0.0 <= float(lines[-2].split()[1]) <= 1.0
    assert lines[-1].startswith("exact_match: ") and lines[-1].endswith("(n=1)")
