import helpers.course as course
from helpers.config import get_profile


def test_the_course_converts_the_model_before_the_first_notebook(monkeypatch, capsys):
    # Stored notebook outputs must not depend on whether the model cache existed when a notebook ran.
    events = []
    monkeypatch.setattr(course, "base_model_dir", lambda model_id: events.append(("convert", model_id)))
    monkeypatch.setattr(course, "execute", lambda path, out: events.append(("run", path.name)) or 0.0)
    monkeypatch.setattr(course, "summary", lambda: "")
    assert course.main(["--only", "01", "02"]) == 0
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
