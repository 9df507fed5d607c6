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


def test_chapters_recording_at_the_same_time_keep_each_others_figures(tmp_path):
    # make course runs two chapters at once; without the lock, one read-merge-write would drop the other's key.
    import os
    import subprocess
    import sys

    from conftest import ROOT

    path = tmp_path / "results.json"
    writer = ("import sys; from helpers.results import record\n"
              "for i in range(40): record(f'{sys.argv[1]}-{i}', {'i': i}, sys.argv[2])")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", writer, name, str(path)], env=env) for name in ("a", "b")]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    data = load(path)
    assert {k for k in data if not k.startswith("_")} == {f"{n}-{i}" for n in "ab" for i in range(40)}
