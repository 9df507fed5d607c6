import json
from pathlib import Path

import pytest

from helpers.curate import curate, normalise, read_rows, split
from helpers.errors import CourseError
from helpers.paths import DATA, RAW_DATASET
from tests.conftest import run_module

GOOD = {"instruction": "My lower back has been aching since yesterday.", "response": "DIAGNOSIS_CODE: M54.50"}


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def reasons(out: Path) -> dict[int, str]:
    rows = [json.loads(line) for line in (out / "rejects.jsonl").read_text().splitlines()]
    return {row["line"]: row["reason"] for row in rows}


def test_every_defect_class_in_the_demo_file_is_rejected_with_its_reason(tmp_path):
    report = curate([DATA / "examples" / "defects_demo.jsonl"], tmp_path)
    assert reasons(tmp_path) == {
        2: "exact_duplicate", 3: "non_billable_code", 4: "bad_response_format", 5: "invalid_code",
        6: "malformed_json", 8: "empty_instruction", 9: "non_string_instruction", 10: "missing_instruction",
        11: "not_an_object",
    }
    assert report["input_rows"] == report["kept"] + report["rejected"] == 10  # line 7 is blank: not a row


def test_rejects_keep_file_line_and_raw_text(tmp_path):
    src = write(tmp_path / "in.jsonl", [json.dumps(GOOD), '{"instruction": "x", "response": "DIAGNOSIS_CODE: R51"}'])
    curate([src], tmp_path / "out")
    reject = json.loads((tmp_path / "out" / "rejects.jsonl").read_text())
    assert reject == {"file": str(src), "line": 2, "reason": "non_billable_code",
                      "raw": '{"instruction": "x", "response": "DIAGNOSIS_CODE: R51"}'}


def test_json_array_input_with_line_numbers(tmp_path):
    src = tmp_path / "seed.json"
    src.write_text('[\n  {"instruction": "a cough that will not quit", "response": "DIAGNOSIS_CODE: R05.9"},\n'
                   '  {"instruction": 3, "response": "DIAGNOSIS_CODE: R05.9"}\n]\n')
    rows = read_rows(src)
    assert rows[0].data["response"] == "DIAGNOSIS_CODE: R05.9" and rows[0].line == 2
    assert rows[1].reason == "non_string_instruction" and rows[1].line == 3


def test_bom_is_tolerated(tmp_path):
    src = tmp_path / "bom.jsonl"
    src.write_bytes(b"\xef\xbb\xbf" + json.dumps(GOOD).encode())
    assert read_rows(src)[0].data == GOOD


def test_invalid_utf8_line_is_one_reject(tmp_path):
    src = tmp_path / "latin1.jsonl"
    src.write_bytes(json.dumps(GOOD).encode() + b'\n{"instruction": "caf\xe9", "response": "DIAGNOSIS_CODE: R42"}\n')
    report = curate([src], tmp_path / "out")
    assert report["by_reason"] == {"not_utf8": 1} and report["kept"] == 1


def test_normalise_folds_unicode_and_whitespace():
    assert normalise("  My\u00a0back\t\thurts\u3000 ") == "My back hurts"


def test_duplicates_differing_only_in_case_and_spacing_are_dropped(tmp_path):
    twin = {**GOOD, "instruction": "  MY LOWER BACK has been aching   since yesterday. "}
    src = write(tmp_path / "in.jsonl", [json.dumps(GOOD), json.dumps(twin)])
    assert curate([src], tmp_path / "out")["by_reason"] == {"exact_duplicate": 1}


def test_response_code_is_normalised_to_upper_case(tmp_path):
    src = write(tmp_path / "in.jsonl", [json.dumps({**GOOD, "response": "DIAGNOSIS_CODE: m54.50"})])
    curate([src], tmp_path / "out")
    assert json.loads((tmp_path / "out" / "train.jsonl").read_text())["code"] == "M54.50"


def test_course_dataset_splits_cover_every_code_and_never_share_a_phrasing(tmp_path):
    report = curate([RAW_DATASET], tmp_path)
    assert report["input_rows"] == report["kept"] + report["rejected"]
    assert report["kept"] >= 300 and report["codes"] >= 30
    splits = {name: [json.loads(line) for line in (tmp_path / f"{name}.jsonl").read_text().splitlines()]
              for name in ("train", "val", "test")}
    codes = [{r["code"] for r in rows} for rows in splits.values()]
    assert codes[0] == codes[1] == codes[2]
    instructions = [{r["instruction"].casefold() for r in rows} for rows in splits.values()]
    assert not (instructions[0] & instructions[1]) and not (instructions[0] & instructions[2])
    assert not (instructions[1] & instructions[2])
    row = splits["train"][0]
    assert row["prompt"][-1] == {"role": "user", "content": row["instruction"]}
    assert row["completion"] == [{"role": "assistant", "content": row["response"]}]


def test_split_is_reproducible(tmp_path):
    curate([RAW_DATASET], tmp_path / "a")
    curate([RAW_DATASET], tmp_path / "b")
    assert (tmp_path / "a" / "test.jsonl").read_text() == (tmp_path / "b" / "test.jsonl").read_text()


def test_cli_reports_counts_and_exits_zero_with_rejects(tmp_path):
    result = run_module("helpers.curate", str(DATA / "examples" / "defects_demo.jsonl"), "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "10 rows read: 1 kept, 9 rejected" in result.stdout
    assert json.loads((tmp_path / "report.json").read_text())["rejected"] == 9


@pytest.mark.parametrize("make, message", [
    (lambda d: d / "missing.jsonl", "missing.jsonl: no such file"),
    (lambda d: d, "is a directory"),
    (lambda d: (d / "junk.bin").write_bytes(bytes(range(256)) * 4) and d / "junk.bin", "no parsable JSON row"),
])
def test_cli_unreadable_input_is_a_one_line_error(tmp_path, make, message):
    target = make(tmp_path)
    result = run_module("helpers.curate", str(target), "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert message in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_unreadable_file_raises_course_error(tmp_path):
    with pytest.raises(CourseError, match="no such file"):
        read_rows(tmp_path / "nope.jsonl")


def test_split_puts_small_codes_in_train_only():
    from helpers.curate import Row

    rows = [Row("f", i, "", {}, code="R42") for i in range(2)]
    assert [len(v) for v in split(rows).values()] == [2, 0, 0]
