import json

from helpers.results import load, record, summary


def test_record_merges_chapters_and_stamps_metadata(tmp_path):
    path = tmp_path / "results.json"
    record("01_curation", {"kept": 440}, path)
    record("05_evaluation", {"test_finetuned": {"exact_match": 0.5}}, path)
    data = json.loads(path.read_text())
    assert data["01_curation"] == {"kept": 440}
    assert data["05_evaluation"]["test_finetuned"]["exact_match"] == 0.5
    assert "updated" in data["_meta"]


def test_summary_lists_every_figure(tmp_path):
    path = tmp_path / "results.json"
    record("05_evaluation", {"test_finetuned": {"exact_match": 0.5}}, path)
    text = summary(load(path))
    assert "05_evaluation" in text and "test_finetuned.exact_match" in text and "0.5" in text


def test_summary_without_results_says_how_to_get_them():
    assert "make course" in summary({})
