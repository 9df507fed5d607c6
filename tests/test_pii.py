import json

import pytest

from helpers.paths import DATA
from helpers.pii import find_pii, scrub


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


@pytest.mark.parametrize("text", [
    "I'm Not sure, my temp was 38.9 and BP 150/95 since Tuesday.",
    "My son is 4 and has had a fever of 102 for 3 days.",
    "I'm Type 2 diabetic and this is Monday's reading: 180.",
    "Took 400 mg of ibuprofen at 10:30, pain 7 out of 10.",
])
def test_ordinary_numbers_and_capitals_are_not_pii(text):
    assert find_pii(text) == []


def test_no_complaint_written_for_the_course_is_mistaken_for_pii():
    source = json.loads((DATA / "complaints.json").read_text())
    flagged = [c for entry in source.values() for c in entry["complaints"] if find_pii(c)]
    assert flagged == []
