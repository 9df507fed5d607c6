import json
import sys
from pathlib import Path

import pytest

from helpers import pii
from helpers.curate import fingerprint
from helpers.errors import CourseError
from helpers.jsonl import read_jsonl
from helpers.paths import BATCH2_DATASET, DATA, RAW_DATASET
from helpers.pii import LABELLED_SET, evaluate, find_pii, read_labelled, scrub
from tests.conftest import run_module


@pytest.fixture(scope="module")
def measured():
    return evaluate()


# --- the targets, measured on the labelled set --------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["phone", "email", "date", "id"])
def test_recall_on_the_labelled_set_is_at_least_98_percent(measured, kind):
    rates = measured["kinds"][kind]
    missed = [m for m in measured["missed"] if m["kind"] == kind]
    assert rates["gold"] >= 14 and rates["recall"] >= 0.98, missed


def test_overall_precision_on_the_labelled_set_is_at_least_90_percent(measured):
    assert measured["overall"]["predicted"] > 100
    assert measured["overall"]["precision"] >= 0.9, measured["false_positives"]


def test_names_are_found_where_a_cue_introduces_them(measured):
    # Bare names without a cue are the known limit (no trustworthy offline NER model: see the module docstring);
    # this keeps the cues from silently getting worse.
    names = measured["kinds"]["name"]
    assert names["gold"] >= 40 and names["recall"] >= 0.7 and names["precision"] >= 0.9
    assert {m["text"] for m in measured["missed"] if m["kind"] == "name"} >= {"Maria", "Jake"}  # "Maria has a cough"


# --- the labelled set itself --------------------------------------------------------------------------------------

def test_labelled_set_is_what_its_builder_writes():
    sys.path.insert(0, str(DATA / "pii"))
    from build_labelled_snippets import build

    assert build() == read_jsonl(LABELLED_SET)


def test_labelled_set_has_exact_offsets_and_both_halves():
    rows = read_labelled()  # checks every offset, kind and order
    with_pii = [r for r in rows if r["spans"]]
    assert len(rows) >= 200 and 0.4 <= len(with_pii) / len(rows) <= 0.6
    assert len({r["id"] for r in rows}) == len(rows)
    texts = {r["id"]: r["text"] for r in rows}
    spans = [(texts[r["id"]][s["start"]:s["end"]], s["kind"]) for r in rows for s in r["spans"]]
    assert ("3/14/82", "date") in spans and ("14-Mar-1982", "date") in spans and ("987654320", "id") in spans


@pytest.mark.parametrize("line, message", [
    ("not json", "set.jsonl:1: not JSON"),
    ('{"id": "a", "text": "call 555-0100"}', "field 'spans' must be a list"),
    ('{"id": "a", "text": "call 555-0100", "spans": [{"start": 5, "end": 40, "kind": "phone"}]}', "0 <= start < end"),
    ('{"id": "a", "text": "call 555-0100", "spans": [{"start": 5, "end": 13, "kind": "fax"}]}', "'kind' must be one"),
    ('{"id": "a", "text": "call 555-0100", "spans": [{"start": 4, "end": 13, "kind": "phone"}]}', "white space"),
])
def test_a_bad_labelled_row_is_a_one_line_error_naming_line_and_field(tmp_path, line, message):
    path = tmp_path / "set.jsonl"
    path.write_text(line + "\n", encoding="utf-8")
    with pytest.raises(CourseError, match=message) as error:
        read_labelled(path)
    assert "set.jsonl:1" in str(error.value) and "\n" not in str(error.value)


def test_cli_prints_recall_and_precision_per_kind():
    result = run_module("helpers.pii")
    assert result.returncode == 0, result.stderr
    assert "labelled_snippets.jsonl" in result.stdout
    for kind in ("phone", "email", "date", "id", "name", "overall"):
        assert f"\n{kind} " in result.stdout


def test_cli_on_a_missing_file_exits_2_with_one_line(tmp_path):
    result = run_module("helpers.pii", str(tmp_path / "nope.jsonl"))
    assert result.returncode == 2 and result.stderr.startswith("error: ") and result.stderr.count("\n") == 1


# --- each kind, and the forms that used to survive ----------------------------------------------------------------

@pytest.mark.parametrize("text, kinds, gone", [
    ("Call me at (415) 555-0132 please", ["phone"], "555-0132"),
    ("my number is +44 20 7946 0958", ["phone"], "7946"),
    ("ring 07700 900123 after six", ["phone"], "900123"),
    ("email jo.smith+clinic@example.org if needed", ["email"], "jo.smith"),
    ("DOB 03/14/1982, sore throat", ["date"], "1982"),
    ("born March 4, 1979 and dizzy", ["date"], "1979"),
    ("SSN 078-05-1120 on file", ["id"], "078-05"),
    ("My name is Omar and my ear hurts", ["name"], "Omar"),
    ("Hi, this is Dana Whitfield, my knee hurts", ["name"], "Whitfield"),
    ("Dr. Kowalski said to come back", ["name"], "Kowalski"),
    ("thanks, Lena Ortiz here. Signed, Lena", ["name", "name"], "Lena"),
])
def test_each_kind_of_pii_is_replaced(text, kinds, gone):
    cleaned, found = scrub(text)
    assert sorted(found) == sorted(kinds)
    assert gone not in cleaned and "[" in cleaned


@pytest.mark.parametrize("text, kind, gone", [
    # numbers the phone library judges invalid: the fictional 555 exchange and area code, unassigned and N11 codes
    ("Call (555) 555-0100, my mom has had diarrhea for 2 days.", "phone", "555-0100"),
    ("call 555-555-1234 about the rash", "phone", "555-1234"),
    ("You can text me at 387-555-0142, my ear is ringing.", "phone", "0142"),
    ("Please phone (723) 555-0119 about my readings.", "phone", "0119"),
    ("call me on 311-555-0123 instead", "phone", "0123"),
    ("my phone is 555-0132 and I have a fever", "phone", "0132"),
    ("Work 212-555-0163 x204, chest feels tight", "phone", "x204"),
    # dates with two-digit years and month abbreviations
    ("Patient born 3/14/82, lower back pain.", "date", "3/14/82"),
    ("My date of birth is 14-Mar-1982.", "date", "Mar"),
    ("DOB: Mar 14 82. Ear infection again.", "date", "Mar 14"),
    ("Born on the 14th of March 1982.", "date", "1982"),
    ("DOB 03/14, no allergies", "date", "03/14"),
    ("I was born in 1982 and my knee hurts", "date", "1982"),
    # social security numbers without dashes
    ("my ssn is 987654320 for the form", "id", "987654320"),
    ("Social security number is 987 65 4321.", "id", "4321"),
    ("For billing: 987 65 4329, cough", "id", "4329"),
    ("the number on my card is 987654326", "id", "987654326"),
])
def test_forms_the_first_scrubber_missed_are_scrubbed(text, kind, gone):
    cleaned, kinds = scrub(text)
    assert kind in kinds and gone not in cleaned, cleaned


@pytest.mark.parametrize("text", [
    "I'm Not sure, my temp was 38.9 and BP 150/95 since Tuesday.",
    "My son is 4 and has had a fever of 102 for 3 days.",
    "I'm Type 2 diabetic and this is Monday's reading: 180.",
    "Took 400 mg of ibuprofen at 10:30, pain 7 out of 10.",
    "Sore throat for 3 days.",
    "Lower back pain since 2019, worse in the last two weeks.",
    "101.5 F fever and chills.",
    "My blood pressure was 140/90 this morning.",
    "Took 2 x 500 mg of paracetamol.",
    "Last visit they coded it M54.50, and J06.9 before that.",
    "I was in room 214 last week, appointment at 3:15.",
    "I'm 67 and my 3 year old grandson has a cough.",
    "Covid in 2020-2021, and again in 1999 2000 I had pneumonia.",
    "I take vitamin D 1000-2000 IU and 100-1000 mg of fish oil.",
    "Back in May 2019 and again since March 3rd.",
    "Platelets 450,000, viral load 1,200,000 copies, 10,000 steps.",
    "Pain 7/10 for 2-3 weeks, every 4-6 hours, 1/2 a tablet.",
    "I lost my social security card in 2019 and I am anxious.",
    "Hey Doc, born 3 weeks early and at 32 weeks now.",
    "Maybe I should see a doctor. What diagnosis code fits a sprained wrist?",
])
def test_hard_negatives_stay_untouched(text):
    assert find_pii(text) == []


def test_no_complaint_written_for_the_course_is_mistaken_for_pii():
    flagged = []
    for name in ("complaints.json", "complaints_batch2.json"):
        source = json.loads((DATA / name).read_text())
        flagged += [c for entry in source.values() for c in entry["complaints"] if find_pii(c)]
    assert flagged == []


def test_a_change_to_the_pii_rules_makes_curated_splits_stale(tmp_path, monkeypatch):
    before = fingerprint([RAW_DATASET], [BATCH2_DATASET])
    changed = tmp_path / "pii.py"
    changed.write_text(Path(pii.__file__).read_text(encoding="utf-8") + "\n# one more rule\n", encoding="utf-8")
    monkeypatch.setattr(pii, "__file__", str(changed))
    assert fingerprint([RAW_DATASET], [BATCH2_DATASET]) != before
