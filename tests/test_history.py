"""The code table as it stood on an earlier day: labels, catalogue, and the retrieval built on them (chapter 6)."""
import pytest

from helpers import history, rag
from helpers.errors import CourseError
from helpers.evaluation import score

DAY = "2020-06-30"
#: written for these tests: a curated row's fields, and a knowledge-base row's two
ROWS = [
    {"code": "R51.9", "instruction": "My head has been pounding since this morning.",
     "response": "DIAGNOSIS_CODE: R51.9", "prompt": [{"role": "user", "content": "head pounding"}],
     "completion": [{"role": "assistant", "content": "DIAGNOSIS_CODE: R51.9"}]},
    {"code": "K59.00", "instruction": "I have not been able to go to the toilet for four days.",
     "response": "DIAGNOSIS_CODE: K59.00"},
    {"code": "M54.50", "instruction": "My lower back aches every time I lift the baby."},
]


def test_the_codes_split_after_a_day_map_back_to_the_code_of_that_day():
    assert history.changed_since(DAY) == {"R51.9": "R51", "M54.50": "M54.5", "R05.9": "R05", "R63.30": "R63.3",
                                          "M79.10": "M79.1"}
    assert history.changed_since("2021-12-31") == {"M79.10": "M79.1"}  # myalgia was split in October 2022
    assert history.changed_since("2023-01-01") == {}
    # F32.8 was split in 2021 with no single successor: no label maps back to it
    assert "F32.8" not in history.changed_since(DAY).values()


def test_rows_are_relabelled_as_written_that_day_and_nothing_else_changes():
    then = history.as_written_on(ROWS, DAY)
    assert [r["code"] for r in then] == ["R51", "K59.00", "M54.5"]
    assert then[0]["response"] == "DIAGNOSIS_CODE: R51"
    assert then[0]["completion"] == [{"role": "assistant", "content": "DIAGNOSIS_CODE: R51"}]
    assert then[0]["prompt"] == ROWS[0]["prompt"] and then[0]["instruction"] == ROWS[0]["instruction"]
    assert then[1] == ROWS[1]  # K59.0 was split in 2016: the 2020 label is today's
    assert set(then[2]) == {"code", "instruction"}
    assert ROWS[0]["code"] == "R51.9"  # the given rows are left as they were


def test_the_catalogue_of_that_day_lists_the_old_code_in_place_of_its_children():
    codes = ["R51.0", "R51.9", "M54.2", "M54.50", "M54.51", "K59.00", "K59.01"]
    assert history.table_on(codes, DAY) == ["R51", "M54.2", "M54.5", "K59.00", "K59.01"]
    assert history.table_on(codes, "2024-01-01") == codes
    then = {d.code: d.text for d in rag.catalogue(codes, on=DAY)}
    assert then["R51"] == "Headache" and "R51.9" not in then


def test_bad_input_is_a_one_line_error():
    for day in ("June 2020", "2020-13-01", None):
        with pytest.raises(CourseError) as excinfo:
            history.changed_since(day)
        assert str(excinfo.value).startswith("a day must be written YYYY-MM-DD") and "\n" not in str(excinfo.value)
    with pytest.raises(CourseError, match="row 2: a row needs a string field 'code'"):
        history.as_written_on([ROWS[0], {"instruction": "a cough"}], DAY)


def test_the_knowledge_base_of_that_day_answers_the_old_code_and_todays_the_new_one():
    embedder = rag.load_embedder()
    then = rag.build_index(rag.course_documents("dataset-categories", ROWS, on=DAY), embedder, cache=None)
    today = rag.build_index(rag.course_documents("dataset-categories", ROWS), embedder, cache=None)
    queries = ["my head hurts and will not stop", "my lower back aches when I lift the shopping"]
    assert [h[0].code for h in then.search(queries, 1)] == ["R51", "M54.5"]
    assert [h[0].code for h in today.search(queries, 1)] == ["R51.9", "M54.50"]
    rows = [{"code": "R51.9", "instruction": queries[0]}, {"code": "M54.50", "instruction": queries[1]}]
    stale = score(rows, rag.top1_answers(then.search(queries, 1)))
    assert stale.exact_match == 0.0 and rag.old_code_rate(stale, DAY) == 1.0
    current = score(rows, rag.top1_answers(today.search(queries, 1)))
    assert current.exact_match == 1.0 and rag.old_code_rate(current, DAY) == 0.0
