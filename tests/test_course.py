import helpers.course as course
from helpers.config import get_profile


def test_the_course_converts_the_model_before_the_first_notebook(monkeypatch, capsys):
    # Stored notebook outputs must not depend on whether the model cache existed when a notebook ran.
    events = []
    monkeypatch.setattr(course, "base_model_dir", lambda model_id: events.append(("convert", model_id)))
    monkeypatch.setattr(course, "execute", lambda path, out: events.append(("run", path.name)) or 0.0)
    monkeypatch.setattr(course, "summary", lambda: "")
    assert course.main(["--only", "01", "02", "--lanes", "1"]) == 0
    assert events == [("convert", get_profile().model_id), ("run", "01_curation.ipynb"),
                      ("run", "02_quantized_loading.ipynb")]
    assert "running 01_curation.ipynb" in capsys.readouterr().out


def test_every_notebook_set_up_converts_the_model_before_any_checked_cell(monkeypatch):
    # `pytest notebooks` alone, on a clone without the model cache, must not print the conversion in a checked cell.
    import helpers.models
    from helpers.notebook import setup

    converted = []
    monkeypatch.setattr(helpers.models, "base_model_dir", lambda model_id: converted.append(model_id))
    profile = setup()
    assert converted == [profile.model_id]


def test_a_chapter_takes_the_cores_the_threads_file_names_and_its_child_processes_do_too(tmp_path):
    import os
    import subprocess
    import sys

    from conftest import ROOT

    probe = ("import os, torch; from helpers.notebook import use_freed_cores; "
             "print(use_freed_cores(), torch.get_num_threads(), os.environ['OMP_NUM_THREADS'])")
    threads = tmp_path / "threads"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "COURSE_THREADS_FILE": str(threads)}

    def run() -> str:
        return subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True,
                              check=True).stdout.split()

    assert run() == ["None", "1", "1"]  # no file yet: the unit tests still run beside the chapters
    threads.write_text("2\n")
    assert run() == ["2", "2", "2"]
    threads.write_text("many\n")
    assert run() == ["None", "1", "1"]


def test_a_test_run_that_changes_the_course_outputs_fails(tmp_path):
    """The root conftest.py guards outputs/ for both halves of `make test`; a copy of it guards a folder of its own."""
    import shutil
    import subprocess
    import sys

    from tests.conftest import ROOT

    shutil.copy(ROOT / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "outputs" / "adapter").mkdir(parents=True)
    (tmp_path / "outputs" / "results.json").write_text('{"05_evaluation": {}}\n')
    (tmp_path / "outputs" / "adapter" / "adapter_config.json").write_text("{}\n")
    outputs = "Path(__file__).parent / 'outputs'"
    (tmp_path / "test_reads.py").write_text(f"from pathlib import Path\n\ndef test_reads():\n"
                                            f"    assert ({outputs} / 'results.json').read_text()\n")
    (tmp_path / "test_writes.py").write_text(f"from pathlib import Path\n\ndef test_writes():\n"
                                             f"    ({outputs} / 'results.json').write_text('{{}}')\n")

    def pytest(name):
        return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", name], cwd=tmp_path,
                              capture_output=True, text=True, timeout=300)

    assert pytest("test_reads.py").returncode == 0
    done = pytest("test_writes.py")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "error: the tests changed the course's outputs: outputs/results.json" in done.stderr


class Finished:
    """A child process that has already ended with ``code``."""

    def __init__(self, code: int = 0):
        self.code = code

    def poll(self):
        return self.code


def test_lanes_start_each_chapter_after_what_it_reads_and_the_longest_chain_first(capsys):
    paths = course.notebooks()
    started, finished = [], []

    def launch(path, out, threads):
        started.append((path.name[:3].rstrip("_"), threads, frozenset(finished)))
        finished.append(path)
        return Finished()

    assert course.run_lanes(paths, lambda p: p, lanes=2, cores=2, launch=launch, poll=0) is None
    order = [name for name, _, _ in started]
    assert sorted(order) == sorted(course.chapter(p) for p in paths)
    done_before = {name: {course.chapter(p) for p in seen} for name, _, seen in started}
    for name, needed in course.NEEDS.items():
        assert set(needed) <= done_before[name], f"{name} started before {needed} were done"
    assert order[0] == "01"  # the head of the longest chain (01 -> 04 -> 05 -> 07)
    assert order.index("04") < order.index("04b")  # 04's chain of work is longer
    assert [t for _, t, _ in started[:-1]] == [1] * (len(started) - 1) and started[-1][1] == 2  # last alone: all


def test_a_failed_chapter_stops_the_course_and_nothing_after_it_starts(capsys):
    paths = [p for p in course.notebooks() if course.chapter(p) in ("01", "04", "05")]
    started = []

    def launch(path, out, threads):
        started.append(course.chapter(path))
        return Finished(1 if course.chapter(path) == "04" else 0)

    assert course.run_lanes(paths, lambda p: p, lanes=2, cores=2, launch=launch, poll=0) == paths[1].name
    assert started == ["01", "04"]
    assert "04_sft_training.ipynb failed (exit 1)" in capsys.readouterr().out


def test_two_notebooks_run_side_by_side_in_child_processes_each_on_its_share_of_the_cores(tmp_path, monkeypatch):
    import nbformat

    from conftest import ROOT

    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    marks = tmp_path / "marks"
    marks.mkdir()

    def notebook(name: str, code: str):
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, tmp_path / name)
        return tmp_path / name

    # each notebook leaves a mark, then waits (up to 60 s) for the other's: they can only both end side by side
    wait = ("import os, time, pathlib; m = pathlib.Path({marks!r}); (m / {me!r}).write_text(os.environ['OMP_NUM_THREADS'])\n"
            "t = time.time()\nwhile not (m / {other!r}).exists() and time.time() - t < 60: time.sleep(0.2)\n"
            "assert (m / {other!r}).exists()")
    paths = [notebook("91_a.ipynb", wait.format(marks=str(marks), me="a", other="b")),
             notebook("92_b.ipynb", wait.format(marks=str(marks), me="b", other="a"))]
    monkeypatch.setitem(course.NEEDS, "91", ())
    monkeypatch.setitem(course.NEEDS, "92", ())
    outs = tmp_path / "out"
    outs.mkdir()
    assert course.run_lanes(paths, lambda p: outs / p.name, lanes=2, cores=2, poll=0.2) is None
    assert (marks / "a").read_text() == (marks / "b").read_text() == "1"
    assert all(nbformat.read(outs / p.name, as_version=4).cells[0].outputs == [] for p in paths)
