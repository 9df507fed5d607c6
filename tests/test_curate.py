import json
import re
import shutil
import sys
from collections import Counter
from pathlib import Path

import pytest

from helpers import icd10
from helpers.training import FRESH_CODES
from helpers.curate import (
    Row, check_format, check_tokenizer, choose_max_length, conflicting_labels, curate, decontaminate,
    exact_duplicates, fingerprint, near_duplicates, normalise, read_rows, rejects_table, split, template_problem,
)
from helpers.chat import prompt_completion
from helpers.errors import CourseError
from helpers.jsonl import read_jsonl
from helpers.paths import BATCH2_DATASET, DATA, RAW_DATASET, RECIPE_CURATION, show
from helpers.training import ensure_curated
from tests.conftest import run_module

GOOD = {"instruction": "My lower back has been aching since yesterday.", "response": "DIAGNOSIS_CODE: M54.50"}
SEED_WORDING = "Convert the following conversational medical complaint into standard diagnostic code: '"
MANIFEST = json.loads((DATA / "raw" / "planted_defects.json").read_text())


def write(path: Path, rows: list) -> Path:
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


def rejects(out: Path) -> dict[int, dict]:
    return {r["line"]: r for r in read_jsonl(out / "rejects.jsonl")}


def split_rows(out: Path, name: str) -> list[dict]:
    return read_jsonl(out / f"{name}.jsonl")


def row(instruction: str, code: str, line: int = 1, file: str = "f.jsonl") -> Row:
    return Row(file, line, "", {"instruction": instruction, "response": f"DIAGNOSIS_CODE: {code}"}, code=code)


# --- the project's raw file, curated once -------------------------------------------------------

@pytest.fixture(scope="module")
def course(tmp_path_factory, tokenizer):
    out = tmp_path_factory.mktemp("curated")
    return out, curate([RAW_DATASET], out, tokenizer=tokenizer)


@pytest.fixture(scope="module")
def course_with_batch2(tmp_path_factory, tokenizer):
    """The course's splits as chapter 1 leaves them: the raw file, plus the second batch in train only."""
    out = tmp_path_factory.mktemp("curated_batch2")
    return out, curate([RAW_DATASET], out, tokenizer=tokenizer, train_only=[BATCH2_DATASET], held_out=FRESH_CODES)


def test_raw_file_is_big_and_varied_enough():
    source = json.loads((DATA / "complaints.json").read_text())
    raw_rows = [line for line in RAW_DATASET.read_bytes().splitlines() if line.strip()]
    assert len(raw_rows) >= 1500 and len(source) >= 60
    assert all(len(set(entry["complaints"])) >= 15 for entry in source.values())
    assert all(icd10.is_billable(code) for code in source)
    assert sum(SEED_WORDING.encode() in line for line in raw_rows) >= 100


def test_report_reconciles_with_the_files(course):
    out, report = course
    kept = sum(len(split_rows(out, name)) for name in ("train", "val", "test"))
    assert report["input_rows"] == report["kept"] + report["rejected"] == kept + len(rejects(out))
    assert sum(report["by_reason"].values()) == report["rejected"]
    physical = [i for i, line in enumerate(RAW_DATASET.read_bytes().splitlines(), 1) if line.strip()]
    kept_lines = {int(r["source"].rsplit(":", 1)[1]) for n in ("train", "val", "test") for r in split_rows(out, n)}
    assert sorted(kept_lines | set(rejects(out))) == physical  # every row accounted for, by its physical line


def test_every_planted_defect_gets_its_reason(course):
    out, report = course
    found = rejects(out)
    expected = {cls: spec["expected"] for cls, spec in MANIFEST["defects"].items()}
    for line, cls in MANIFEST["lines"].items():
        reason = found.get(int(line), {}).get("reason", "kept")
        if cls == "leaked_phrasing":
            assert reason in ("kept", "overlaps_eval"), (line, reason)
        elif expected[cls].startswith("kept"):
            assert reason == "kept", (line, cls, found.get(int(line)))
        else:
            assert reason == expected[cls], (line, cls, reason)
    # Nothing but planted defects and the train twins of leaks is rejected.
    twins = {a for a, _ in MANIFEST["leak_twins"]}
    stray = {n: r["reason"] for n, r in found.items() if str(n) not in MANIFEST["lines"]}
    assert set(stray.values()) <= {"overlaps_eval"} and set(stray) <= twins
    assert report["remapped"] == {"K59.0 -> K59.00": 3, "M54.5 -> M54.50": 4, "M79.1 -> M79.10": 3,
                                  "R05 -> R05.9": 4, "R51 -> R51.9": 4}


def test_no_leaked_complaint_is_in_train_and_in_val_or_test(course):
    out, report = course
    where = {int(r["source"].rsplit(":", 1)[1]): n for n in ("train", "val", "test") for r in split_rows(out, n)}
    straddling = [(a, b) for a, b in MANIFEST["leak_twins"] if {where.get(a), where.get(b)} & {"train"}
                  and {where.get(a), where.get(b)} & {"val", "test"}]
    assert straddling == []
    assert report["decontamination"]["removed_from_train"] == report["by_reason"]["overlaps_eval"] > 0


def test_kept_rows_are_billable_short_enough_and_split_by_code(course):
    out, report = course
    splits = {n: split_rows(out, n) for n in ("train", "val", "test")}
    limit = report["tokens"]["max_length"]
    assert report["tokens"]["chosen_from_data"] and report["tokens"]["max_kept"] <= limit
    for rows in splits.values():
        assert all(icd10.is_billable(r["code"]) and r["response"] == f"DIAGNOSIS_CODE: {r['code']}" for r in rows)
    codes = [{r["code"] for r in rows} for rows in splits.values()]
    assert codes[0] == codes[1] == codes[2] and len(codes[0]) == report["codes"] >= 60
    phrasings = [{re.sub(r"\W+", " ", r["instruction"].casefold()).strip() for r in rows} for rows in splits.values()]
    assert not (phrasings[0] & phrasings[1] or phrasings[0] & phrasings[2] or phrasings[1] & phrasings[2])
    first = splits["train"][0]
    assert first["prompt"][-1] == {"role": "user", "content": first["instruction"]}
    assert first["completion"] == [{"role": "assistant", "content": first["response"]}]


def test_no_planted_pii_survives_in_any_output(course):
    out, report = course
    sys.path.insert(0, str(DATA))
    from build_raw_dataset import NAMES

    text = "\n".join(p.read_text(encoding="utf-8") for p in out.iterdir())
    patterns = [re.escape(part) for name in NAMES for part in name.split()]
    patterns += [r"555[- ]?01\d\d", r"555 01\d\d", r"@example\.com", r"078-05-11", r"\d\d/\d\d/19\d\d"]
    survivors = [p for p in patterns if re.search(p, text)]
    assert survivors == []
    assert report["pii_scrubbed"]["name"] >= 10 and report["pii_scrubbed"]["phone"] >= 10
    assert "[PHONE]" in text and "[NAME]" in text and "[EMAIL]" in text and "[DATE]" in text


def test_uncurated_training_set_keeps_the_dirt_but_not_the_eval_rows(course):
    out, report = course
    uncurated = split_rows(out, "train_uncurated")
    assert len(uncurated) == report["uncurated_train_rows"] > report["splits"]["train"]
    answers = Counter(r["response"].split(":")[-1].strip() for r in uncurated)
    assert sum(answers[c] for c in ("M54.5", "R51", "R05", "M79.1", "K59.0")) > 0  # stale codes still in there
    invalid = ("X99.99", "J06.99", "RO5.9", "I1O", "M54.500", "J02.9X", "Z00.0O", "R5.09")
    assert sum(answers[c] for c in invalid) >= 4 and answers["R69"] >= 5  # invalid codes, pasted transcripts
    held_out = {r["instruction"] for n in ("val", "test") for r in split_rows(out, n)}
    assert not held_out & {r["instruction"] for r in uncurated}


def test_curation_is_reproducible(course, tmp_path, tokenizer):
    out, _ = course
    curate([RAW_DATASET], tmp_path, tokenizer=tokenizer)
    for name in ("train", "val", "test", "rejects", "train_uncurated"):
        assert (tmp_path / f"{name}.jsonl").read_bytes() == (out / f"{name}.jsonl").read_bytes()


def test_fingerprint_follows_the_input_bytes(tmp_path):
    copy = tmp_path / "raw.jsonl"
    copy.write_bytes(RAW_DATASET.read_bytes())
    assert fingerprint([copy]) == fingerprint([RAW_DATASET])
    copy.write_bytes(RAW_DATASET.read_bytes().replace(b"M54.50", b"M54.59", 1))
    assert fingerprint([copy]) != fingerprint([RAW_DATASET])


def test_stale_splits_of_the_course_data_are_curated_again(course_with_batch2, tmp_path, capsys):
    out, report = course_with_batch2
    assert report["fingerprint"] == fingerprint([RAW_DATASET], [BATCH2_DATASET], held_out=FRESH_CODES)
    splits = shutil.copytree(out, tmp_path / "data")
    inode = (splits / "train.jsonl").stat().st_ino  # a marker: curating again would put a new file in its place
    assert ensure_curated(splits) == splits and (splits / "train.jsonl").stat().st_ino == inode  # current: kept

    stale = {**report, "fingerprint": "0" * 16}  # say, curated before the prompt format changed
    (splits / "report.json").write_text(json.dumps(stale))
    ensure_curated(splits)
    assert "curating again" in capsys.readouterr().out
    assert (splits / "train.jsonl").read_bytes() == (out / "train.jsonl").read_bytes()
    assert json.loads((splits / "report.json").read_text())["fingerprint"] == report["fingerprint"]


def test_stale_splits_are_curated_again_with_the_settings_they_were_curated_with(course, tmp_path, monkeypatch):
    import helpers.curate

    out, report = course
    assert report["settings"] == {"seed": 0, "max_length": None, "near_dup_threshold": 0.8, "held_out": []}
    calls = []
    monkeypatch.setattr(helpers.curate, "curate", lambda inputs, out_dir, **kwargs: calls.append(kwargs))
    splits = tmp_path / "data"
    splits.mkdir()
    settings = {"seed": 3, "max_length": 128, "near_dup_threshold": 0.7}  # chapter 1's exercises, say
    (splits / "report.json").write_text(json.dumps({**report, "fingerprint": "0" * 16, "settings": settings}))
    ensure_curated(splits)
    assert calls == [{**settings, "held_out": FRESH_CODES, "train_only": [BATCH2_DATASET]}]


def test_splits_of_the_raw_file_alone_are_curated_again_with_the_second_batch(course, course_with_batch2, tmp_path):
    splits = shutil.copytree(course[0], tmp_path / "data")  # chapter 1 stopped before its last section, say
    ensure_curated(splits)
    assert (splits / "train.jsonl").read_bytes() == (course_with_batch2[0] / "train.jsonl").read_bytes()


def test_splits_curated_from_a_teams_own_files_are_used_as_they_are(course, tmp_path):
    out, report = course
    splits = shutil.copytree(out, tmp_path / "data")
    (splits / "report.json").write_text(json.dumps({**report, "inputs": ["our_notes.jsonl"], "fingerprint": "0" * 16}))
    inode = (splits / "train.jsonl").stat().st_ino  # a marker: curating again would put a new file in its place
    ensure_curated(splits)
    assert (splits / "train.jsonl").stat().st_ino == inode
    # the course's raw file with a team's own second batch: theirs too
    (splits / "report.json").write_text(json.dumps({**report, "train_only_inputs": ["our_batch.jsonl"],
                                                    "fingerprint": "0" * 16}))
    ensure_curated(splits)
    assert (splits / "train.jsonl").stat().st_ino == inode


def test_splits_a_recipe_curated_from_the_course_data_keep_the_recipes_settings(course, tmp_path, capsys):
    # python -m helpers.train curates the course's raw file with the recipe's settings (every code, no second batch
    # here): those are not stale course splits, and its training must not curate them again under the course's
    splits = shutil.copytree(course[0], tmp_path / "data")
    (splits / RECIPE_CURATION).write_text(json.dumps({"curated": True, "fingerprint": course[1]["fingerprint"]}))
    inode = (splits / "train.jsonl").stat().st_ino  # a marker: curating again would put a new file in its place
    assert ensure_curated(splits) == splits and (splits / "train.jsonl").stat().st_ino == inode
    assert "curating again" not in capsys.readouterr().out
    (splits / RECIPE_CURATION).unlink()  # the same folder without the recipe's record: the course's, and stale
    ensure_curated(splits)
    assert (splits / "train.jsonl").stat().st_ino != inode


def test_held_out_codes_leave_training_entirely_and_every_other_row_where_it_was(course_with_batch2, tmp_path,
                                                                                 tokenizer):
    out, report = course_with_batch2
    assert report["held_out_codes"] == sorted(FRESH_CODES)
    fresh, fresh_train = split_rows(out, "fresh"), split_rows(out, "fresh_train")
    assert {r["code"] for r in fresh} == {r["code"] for r in fresh_train} == set(FRESH_CODES)
    for name in ("train", "val", "test", "train_uncurated"):
        assert not {r["code"] for r in split_rows(out, name)} & set(FRESH_CODES), name
    assert report["splits"]["fresh"] == len(fresh) and report["kept"] == sum(report["splits"].values())
    # the same curation without holding anything out: every other row lands exactly where it did
    whole = tmp_path / "whole"
    curate([RAW_DATASET], whole, tokenizer=tokenizer, train_only=[BATCH2_DATASET])
    for name, held in (("train", "fresh_train"), ("val", "fresh"), ("test", "fresh")):
        rows = [r for r in split_rows(whole, name) if r["code"] not in FRESH_CODES]
        assert rows == split_rows(out, name), name
    assert {r["instruction"] for r in fresh} == {r["instruction"] for n in ("val", "test")
                                                 for r in split_rows(whole, n) if r["code"] in FRESH_CODES}


def test_a_held_out_code_must_be_billable(tmp_path, tokenizer):
    with pytest.raises(CourseError, match="held-out codes must be billable ICD-10-CM codes: M54.5"):
        curate([write(tmp_path / "in.jsonl", [GOOD] * 3)], tmp_path / "out", tokenizer=tokenizer, held_out=("M54.5",))


def test_uncurated_rows_say_which_code_their_answer_meant(course):
    out, _ = course
    meant = {r["response"]: r["code"] for r in split_rows(out, "train_uncurated")}
    assert meant["DIAGNOSIS_CODE: M54.5"] == "M54.50"  # a stale code: its successor
    assert meant["The code is R05.9"] == "R05.9"  # the wrong format, the right code
    invalid = [f"DIAGNOSIS_CODE: {c}" for c in ("X99.99", "J06.99", "RO5.9", "I1O", "M54.500", "J02.9X", "Z00.0O")]
    assert [meant[a] for a in invalid if a in meant] == [None] * sum(a in meant for a in invalid) != []  # no such code


#: a chat template of another family (role tags, no system default), ending each turn with the same EOS
OTHER_TEMPLATE = ("{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}{{ eos_token }}\n{% endfor %}"
                  "{% if add_generation_prompt %}<|assistant|>\n{% endif %}")


def test_rows_are_checked_and_measured_with_the_tokenizer_they_will_train_with(tmp_path, tokenizer):
    import copy

    from helpers.chat import prompt_completion
    from helpers.curate import render, tokenizer_digest

    other = copy.deepcopy(tokenizer)
    other.chat_template = OTHER_TEMPLATE
    rows = [{"instruction": f"{text} since yesterday.", "response": "DIAGNOSIS_CODE: M54.50"}
            for text in ("My lower back aches", "Low back pain", "My back hurts low down")]
    source = write(tmp_path / "in.jsonl", rows)
    ours = curate([source], tmp_path / "ours", tokenizer=tokenizer)
    theirs = curate([source], tmp_path / "theirs", tokenizer=other)
    assert render(prompt_completion(rows[0]), other).startswith("<|system|>\n<|im_end|>\n<|user|>")
    assert ours["tokens"]["min"] != theirs["tokens"]["min"]  # rule 6 counts the other template's tokens
    assert ours["tokenizer"] == tokenizer_digest(tokenizer) != theirs["tokenizer"] == tokenizer_digest(other)
    assert ours["fingerprint"] != theirs["fingerprint"]


def test_course_splits_are_curated_again_for_a_model_of_another_family(course_with_batch2, tmp_path, monkeypatch,
                                                                       tokenizer):
    import copy

    import helpers.curate
    import helpers.training

    out, _ = course_with_batch2
    splits = shutil.copytree(out, tmp_path / "data")
    other = copy.deepcopy(tokenizer)
    other.chat_template = OTHER_TEMPLATE
    other.save_pretrained(tmp_path / "other-model")  # a team's model of another family, say
    monkeypatch.setenv("COURSE_MODEL", str(tmp_path / "other-model"))
    calls = []
    monkeypatch.setattr(helpers.curate, "curate", lambda inputs, out_dir, **kwargs: calls.append(kwargs))
    helpers.training.ensure_curated(splits)
    assert len(calls) == 1  # the embedded model's splits do not fit the other template
    monkeypatch.delenv("COURSE_MODEL")
    calls.clear()
    helpers.training.ensure_curated(splits)
    assert calls == []


def test_raw_file_builder_is_deterministic(tmp_path):
    sys.path.insert(0, str(DATA))
    from build_raw_dataset import build

    source = json.loads((DATA / "complaints.json").read_text())
    lines, manifest = build(source)
    encoded = b"".join((x if isinstance(x, bytes) else x.encode()) + b"\n" for x in lines)
    assert encoded == RAW_DATASET.read_bytes() and manifest["lines"] == MANIFEST["lines"]


# --- a train-only second batch --------------------------------------------------------------------

def test_second_batch_joins_train_and_leaves_every_first_batch_row_where_it_was(course, course_with_batch2):
    (first, _), (both, report) = course, course_with_batch2

    def trained(out, name):  # the held-out codes left training in `both` (see the held-out test)
        return [r for r in split_rows(out, name) if r["code"] not in FRESH_CODES]

    for name in ("val", "test"):
        assert trained(both, name) == trained(first, name)
    old, new = trained(first, "train"), trained(both, "train")
    assert new[:len(old)] == old
    added = new[len(old):]
    assert added and all(r["source"].startswith(show(BATCH2_DATASET) + ":") for r in added)

    batch = report["train_only"]
    lines = [line for line in BATCH2_DATASET.read_text().splitlines() if line.strip()]
    assert batch["rows"] == len(lines) and batch["kept"] == len(added) + batch["held_out"]
    batch_rejects = [r for r in read_jsonl(both / "rejects.jsonl") if r["file"] == show(BATCH2_DATASET)]
    assert batch["kept"] + len(batch_rejects) == batch["rows"]
    assert Counter(r["reason"] for r in batch_rejects) == batch["by_reason"]
    assert Counter(rejects_table(both, file=BATCH2_DATASET)["reason"]) == batch["by_reason"]
    # the first batch's rejects are the same rows for the same reasons
    assert [r for r in read_jsonl(both / "rejects.jsonl") if r["file"] == show(RAW_DATASET)] == \
        read_jsonl(first / "rejects.jsonl")
    # the batch's near copies are of first-batch rows (it has none of its own), and their detail names that file
    near = [r["detail"] for r in batch_rejects if r["reason"] == "near_duplicate"]
    assert near and all(re.fullmatch(rf"Jaccard 0\.\d\d with {re.escape(show(RAW_DATASET))} line \d+", d) for d in near)


def test_second_batch_is_independent_of_the_first():
    """Written later, without the first batch at hand: no complaint is repeated, every code gets as many."""
    first = json.loads((DATA / "complaints.json").read_text())
    second = json.loads((DATA / "complaints_batch2.json").read_text())
    assert list(second) == list(first) and all(second[c]["title"] == first[c]["title"] for c in first)
    assert all(len(e["complaints"]) == len(set(e["complaints"])) == 12 for e in second.values())
    written_before = {c for e in first.values() for c in e["complaints"]}
    assert not written_before & {c for e in second.values() for c in e["complaints"]}


def test_a_later_batch_cannot_remove_an_earlier_row():
    rows = [row("Sore throat.", "J02.9", 1), row("Sore throat.", "R05.9", 1, "b.jsonl"),
            row("Dry cough.", "R05.9", 2, "b.jsonl"), row("Dry cough.", "J20.9", 3, "b.jsonl"),
            row("Runny nose.", "J06.9", 4, "b.jsonl")]
    kept, rejected = conflicting_labels(rows, later=frozenset({"b.jsonl"}))
    assert [(r.file, r.line) for r in kept] == [("f.jsonl", 1), ("b.jsonl", 4)]
    assert [(r.file, r.line, r.detail) for r in rejected] == [
        ("b.jsonl", 1, "same text labelled J02.9, R05.9"), ("b.jsonl", 2, "same text labelled J20.9, R05.9"),
        ("b.jsonl", 3, "same text labelled J20.9, R05.9")]
    # without the batch, the same two-code text drops both rows (the rule's usual answer)
    assert len(conflicting_labels(rows[:2])[0]) == 0


def test_a_file_given_as_input_and_as_train_only_is_refused(tmp_path):
    path = write(tmp_path / "rows.jsonl", [GOOD])
    with pytest.raises(CourseError, match="rows.jsonl: given both as an input and as a train-only file"):
        curate([path], tmp_path / "out", train_only=[path])
    # two files that rejects.jsonl would name alike could not be told apart in it either
    (tmp_path / "b").mkdir()
    other = write(tmp_path / "b" / "rows.jsonl", [GOOD])
    with pytest.raises(CourseError, match="rows.jsonl: a train-only file named like an input"):
        curate([path], tmp_path / "out", train_only=[other])


# --- rule 1: reading ------------------------------------------------------------------------------

def test_demo_file_rejects_each_defect_with_its_reason(tmp_path, tokenizer):
    report = curate([DATA / "examples" / "defects_demo.jsonl"], tmp_path, tokenizer=tokenizer)
    assert {n: r["reason"] for n, r in rejects(tmp_path).items()} == {
        2: "near_duplicate", 4: "bad_response_format", 5: "invalid_code", 6: "malformed_json",
        8: "empty_instruction", 9: "non_string_instruction", 10: "missing_instruction", 11: "not_an_object",
        13: "stale_code", 14: "special_token_in_text", 15: "too_long", 16: "conflicting_labels",
        17: "conflicting_labels",
    }
    assert report["input_rows"] == report["kept"] + report["rejected"] == 16  # line 7 is blank: not a row
    assert report["remapped"] == {"M54.5 -> M54.50": 1} and report["pii_scrubbed"] == {"name": 1, "phone": 1}


def test_reject_keeps_file_line_reason_and_raw_text(tmp_path, tokenizer):
    src = write(tmp_path / "in.jsonl", [GOOD, '{"instruction": "x", "response": "DIAGNOSIS_CODE: R10"}'])
    curate([src], tmp_path / "out", tokenizer=tokenizer)
    assert rejects(tmp_path / "out")[2] == {
        "file": "in.jsonl", "line": 2, "reason": "non_billable_code", "detail": "code R10",
        "raw": '{"instruction": "x", "response": "DIAGNOSIS_CODE: R10"}'}


def test_rejects_never_keep_pii(tmp_path, tokenizer):
    src = write(tmp_path / "in.jsonl", ['{"instruction": "call 415-555-0132, jo@example.org", "response": "J06.9"'])
    with pytest.raises(CourseError):  # the only row is unparsable: a one-line error, not a silent empty run
        curate([src], tmp_path / "out", tokenizer=tokenizer)
    src = write(tmp_path / "in.jsonl", [GOOD, '{"instruction": "call 415-555-0132, jo@example.org", "response": "J06.9"'])
    curate([src], tmp_path / "out", tokenizer=tokenizer)
    raw = rejects(tmp_path / "out")[2]["raw"]
    assert "555-0132" not in raw and "jo@example.org" not in raw and "[PHONE]" in raw


def test_json_array_input_with_line_numbers(tmp_path):
    src = tmp_path / "seed.json"
    src.write_text('[\n  {"instruction": "a cough that will not quit", "response": "DIAGNOSIS_CODE: R05.9"},\n'
                   '  {"instruction": 3, "response": "DIAGNOSIS_CODE: R05.9"}\n]\n')
    rows = read_rows(src)
    assert rows[0].data["response"] == "DIAGNOSIS_CODE: R05.9" and rows[0].line == 2
    assert rows[1].reason == "non_string_instruction" and rows[1].line == 3


def test_seed_format_example_curates(tmp_path, tokenizer):
    report = curate([DATA / "examples" / "seed_format.json"], tmp_path, tokenizer=tokenizer)
    assert report["rejected"] == 0 and report["kept"] == report["input_rows"] >= 5


def test_bom_is_tolerated(tmp_path):
    src = tmp_path / "bom.jsonl"
    src.write_bytes(b"\xef\xbb\xbf" + json.dumps(GOOD).encode())
    assert read_rows(src)[0].data == GOOD


def test_invalid_utf8_line_is_one_reject(tmp_path, tokenizer):
    src = tmp_path / "latin1.jsonl"
    src.write_bytes(json.dumps(GOOD).encode() + b'\n{"instruction": "caf\xe9", "response": "DIAGNOSIS_CODE: R42"}\n')
    report = curate([src], tmp_path / "out", tokenizer=tokenizer)
    assert report["by_reason"] == {"not_utf8": 1} and report["kept"] == 1


@pytest.mark.parametrize("line, reason", [
    ('{"response": "DIAGNOSIS_CODE: R42"}', "missing_instruction"),
    ('{"instruction": "dizzy"}', "missing_response"),
    ('{"instruction": "  ", "response": "DIAGNOSIS_CODE: R42"}', "empty_instruction"),
    ('{"instruction": "dizzy", "response": ""}', "empty_response"),
    ('{"instruction": ["dizzy"], "response": "DIAGNOSIS_CODE: R42"}', "non_string_instruction"),
    ('{"instruction": "dizzy", "response": null}', "non_string_response"),
    ('"dizzy -> R42"', "not_an_object"),
    ('{"instruction": "dizzy", "response": "DIAGNOSIS_CODE: R42",}', "malformed_json"),
])
def test_field_defects(tmp_path, line, reason):
    src = write(tmp_path / "in.jsonl", [GOOD, line])
    assert read_rows(src)[1].reason == reason


# --- rule 2: normalise and format -------------------------------------------------------------------

def test_normalise_folds_unicode_and_whitespace():
    assert normalise("  \uff2dy\u00a0back\t\thurts\u3000 ") == "My back hurts"


@pytest.mark.parametrize("response, code", [
    ("DIAGNOSIS_CODE: m54.50", "M54.50"), ("DIAGNOSIS_CODE:M54.50", "M54.50"),
    ("The code is M54.50", None), ("M54.50", None), ("DIAGNOSIS_CODE: M54.50, R69", None),
    ("diagnosis_code: M54.50", None), ("DIAGNOSIS_CODE:", None),
])
def test_response_format(response, code):
    r = Row("f", 1, "", {"instruction": "x", "response": response})
    assert check_format(r) == (None if code else "bad_response_format")
    assert r.code == code


# --- rule 5: duplicates -----------------------------------------------------------------------------

def test_exact_duplicates_keep_the_first():
    kept, dropped = exact_duplicates([row("my back hurts", "M54.50", 1), row("my back hurts", "M54.50", 9)])
    assert [r.line for r in kept] == [1] and dropped[0].reason == "exact_duplicate" and dropped[0].line == 9


def test_one_text_with_two_codes_drops_both():
    kept, dropped = conflicting_labels([row("Itchy eyes.", "H10.9", 1), row("itchy eyes", "L30.9", 2),
                                        row("my back hurts", "M54.50", 3)])
    assert [r.line for r in kept] == [3] and {r.reason for r in dropped} == {"conflicting_labels"}


@pytest.mark.parametrize("variant", [
    "MY THROAT HAS BEEN RAW AND SCRATCHY SINCE THE WEEKEND",
    "my throat has been raw and scratchy since the weekend!!",
    "My throat has been raw and scratchy since the weeknd.",
    "My   throat has been raw, and scratchy since the weekend",
])
def test_near_duplicates_by_case_punctuation_spacing_and_typo(variant):
    original = "My throat has been raw and scratchy since the weekend."
    kept, dropped, _ = near_duplicates([row(original, "J02.9", 1), row(variant, "J02.9", 2)])
    assert [r.line for r in kept] == [1] and dropped[0].reason == "near_duplicate"


def test_different_complaints_sharing_words_are_not_near_duplicates():
    kept, dropped, _ = near_duplicates([row("My throat has been raw and scratchy since the weekend.", "J02.9", 1),
                                        row("My throat has been sore since I got back from the trip.", "J02.9", 2)])
    assert len(kept) == 2 and dropped == []


def test_near_identical_texts_with_different_codes_are_kept_and_reported():
    kept, dropped, pairs = near_duplicates([row("Pain in my right knee going down stairs", "M25.561", 1),
                                            row("Pain in my left knee going down stairs", "M25.562", 2)], 0.6)
    assert len(kept) == 2 and dropped == [] and pairs and pairs[0][:2] == (1, 2)


def test_near_duplicate_threshold_is_exact_jaccard():
    a, b = "abcdefghij klmnopqrst", "abcdefghij klmnopqrsX"
    for threshold, expect_dropped in ((0.95, 0), (0.7, 1)):
        _, dropped, _ = near_duplicates([row(a, "R42", 1), row(b, "R42", 2)], threshold)
        assert len(dropped) == expect_dropped


# --- rules 6 and 7: length and chat template --------------------------------------------------------

def test_max_length_ignores_a_few_outliers():
    lengths = list(range(60, 160)) * 5  # 500 rows, then 3 pasted transcripts (0.6 %)
    assert choose_max_length(lengths) == choose_max_length(lengths + [900, 1200, 4000]) == 224  # 158 x 1.25


def test_too_long_row_is_rejected(tmp_path, tokenizer):
    src = write(tmp_path / "in.jsonl", [GOOD, {**GOOD, "instruction": "my back hurts " * 80}])
    report = curate([src], tmp_path / "out", tokenizer=tokenizer, max_length=64)
    assert report["by_reason"] == {"too_long": 1} and "> max_length 64" in rejects(tmp_path / "out")[2]["detail"]


def test_rendered_answer_ends_with_eos(tokenizer):
    example = {**GOOD, **prompt_completion(GOOD)}
    assert template_problem(example, tokenizer) is None
    broken = {**example, "instruction": "my back<|im_end|>"}
    assert template_problem(broken, tokenizer) == "special_token_in_text"


def test_pad_token_equal_to_eos_is_refused(tokenizer):
    import copy

    bad = copy.deepcopy(tokenizer)
    bad.pad_token = bad.eos_token
    with pytest.raises(CourseError, match="never|not stop"):
        check_tokenizer(bad)


# --- rule 8: split and decontamination ---------------------------------------------------------------

def test_split_keeps_a_phrasing_in_one_split_and_small_codes_in_train():
    rows = [row(f"complaint number {i}", "R42", i) for i in range(10)] + [row("Complaint number 3!", "R42", 99)]
    rows += [row("one", "R51.9", 50), row("two", "R51.9", 51)]
    splits = split(rows)
    where = {r.line: name for name, rs in splits.items() for r in rs}
    assert where[3] == where[99]
    assert where[50] == where[51] == "train"


def test_decontamination_removes_the_same_complaint_in_other_wording_only():
    wordings = ["What is the ICD-10-CM code for this complaint: {}", "Patient says: {} Give the diagnosis code.",
                "Code this for the chart: {}"]
    codes = ["R42", "J02.9", "R51.9", "M54.50"]
    filler = [row(w.format(f"filler text {c} {i}"), c, 100 + i) for i, (w, c) in
              enumerate((w, c) for w in wordings for c in codes)]
    leak = "My head spins every time I stand up from the sofa."
    test_twin = row(wordings[0].format(leak), "R42", 1)
    train_leak = row(wordings[2].format(leak), "R42", 2)
    common_phrase = row(wordings[2].format("My knee hurts every time I stand up from bending."), "M54.50", 3)
    splits = {"train": [train_leak, common_phrase] + filler, "val": [], "test": [test_twin]}
    dropped = decontaminate(splits)
    assert [r.line for r in dropped] == [2] and dropped[0].reason == "overlaps_eval"
    assert "test line 1" in dropped[0].detail and common_phrase in splits["train"]


# --- the CLI ----------------------------------------------------------------------------------------

def test_cli_reports_counts_and_exits_zero_with_rejects(tmp_path):
    result = run_module("helpers.curate", str(DATA / "examples" / "defects_demo.jsonl"), "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "16 rows read: 3 kept, 13 rejected" in result.stdout
    assert json.loads((tmp_path / "report.json").read_text())["rejected"] == 13


def test_cli_train_only_batch_goes_to_train(tmp_path):
    demo = DATA / "examples" / "defects_demo.jsonl"
    batch = write(tmp_path / "batch.jsonl", [GOOD, {**GOOD, "response": "DIAGNOSIS_CODE: M54.5"}])
    result = run_module("helpers.curate", str(demo), "--train-only", str(batch), "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["train_only"] == {"rows": 2, "kept": 1, "held_out": 0, "by_reason": {"exact_duplicate": 1}}
    assert [r["source"] for r in split_rows(tmp_path / "out", "train") if r["source"].startswith("batch")] == \
        ["batch.jsonl:1"]


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


def test_line_separators_inside_strings_do_not_split_rows(tmp_path):
    tricky = {**GOOD, "instruction": "My back hurts\u2028since Monday\x0cand\x85today"}
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps(GOOD) + "\r\n" + json.dumps(tricky, ensure_ascii=False) + "\n", encoding="utf-8")
    rows = read_rows(src)
    assert [r.line for r in rows] == [1, 2] and all(isinstance(r, Row) for r in rows)


@pytest.mark.parametrize("line, reason", [
    ('{"instruction": "x", "response": "DIAGNOSIS_CODE: R42", "n": ' + "1" * 5000 + "}", "malformed_json"),
    ("[" * 100000 + "]" * 100000, "malformed_json"),
    ('{"instruction": "pain in my head \\ud800 here", "response": "DIAGNOSIS_CODE: R51.9"}', "not_utf8"),
])
def test_pathological_lines_are_rejects_not_crashes(tmp_path, tokenizer, line, reason):
    src = write(tmp_path / "in.jsonl", [GOOD, line])
    report = curate([src], tmp_path / "out", tokenizer=tokenizer)
    assert report["by_reason"] == {reason: 1} and report["kept"] == 1


def test_array_file_with_a_bad_element_keeps_the_rest(tmp_path):
    src = tmp_path / "seed.json"
    src.write_text("[\n" + json.dumps(GOOD) + ",\n" + '{"instruction": "x", "response": "y",},\n'
                   + json.dumps({**GOOD, "instruction": "b"}) + ",\n" + json.dumps({**GOOD, "instruction": "c"}) + "\n]\n"
                   + json.dumps({**GOOD, "instruction": "after the array"}) + "\n")
    rows = read_rows(src)
    assert [(r.line, getattr(r, "reason", "row")) for r in rows] == [
        (2, "row"), (3, "malformed_json"), (4, "row"), (5, "row"), (7, "row")]


def test_jsonl_whose_first_row_is_an_array_is_still_jsonl(tmp_path):
    src = write(tmp_path / "in.jsonl", ['["a", "b"]', GOOD, {**GOOD, "instruction": "other"}])
    rows = read_rows(src)
    assert [(r.line, getattr(r, "reason", "row")) for r in rows] == [(1, "not_an_object"), (2, "row"), (3, "row")]


def test_pii_never_reaches_detail_raw_or_the_uncurated_set(tmp_path, tokenizer):
    src = write(tmp_path / "in.jsonl", [
        GOOD,
        {"instruction": "x", "response": "DIAGNOSIS_CODE: 415-555-0132"},
        '{"instruction": "Which code fits best?\\nName: Dana Whitfield. Mail jo\\u0040example.org", "response": "H92"}',
        {"instruction": "My ear hurts", "response": "The code is H92.09, call 415-555-0199"},
    ])
    curate([src], tmp_path / "out", tokenizer=tokenizer)
    text = "\n".join(p.read_text(encoding="utf-8") for p in (tmp_path / "out").iterdir())
    for secret in ("555-0132", "555-0199", "Whitfield", "jo@example", "jo\\u0040example"):
        assert secret not in text, secret
