"""The upgrade rehearsal (helpers.upgrade_check): its pins, stages, failure reading and report.

The rehearsal itself installs a few gigabytes from the registry and runs the whole suite, so it is run by hand
(``make upgrade-check``), not here; these tests cover the pieces it decides with.
"""
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers.errors import CourseError, run_cli
from helpers.upgrade_check import (KEPT, STAGES, UPGRADED, canonical, is_conflict, main, parse_newest, read_junit,
                                   read_pins, render, requirement_lines, run, write_report)


def test_every_line_of_requirements_is_a_pin_and_what_the_packages_pull_in_is_marked():
    pins = {p.name: p for p in read_pins()}
    assert pins["torch"].version == "2.13.0" and not pins["torch"].transitive
    assert not pins["trl"].transitive and pins["absl-py"].transitive
    assert {canonical(n) for n in UPGRADED} <= {canonical(n) for n in pins}


def test_a_line_that_is_not_an_exact_pin_is_named_with_its_file_and_line(tmp_path):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("# core\ntorch==2.13.0\ntrl>=1.16\n")
    with pytest.raises(CourseError, match=r"requirements.txt:3: 'trl>=1.16' is not an exact pin"):
        read_pins(requirements)


def test_each_stage_releases_more_pins_and_none_releases_torch():
    pins = read_pins()
    chosen = {"trl": "9.0.0", "transformers": "9.1.0"}
    stages = {stage: requirement_lines(pins, chosen, stage) for stage in STAGES}
    for lines in stages.values():
        assert lines[:2] == ["trl==9.0.0", "transformers==9.1.0"]
        assert [f"{k}==2.13.0" for k in KEPT] == [line for line in lines if line.startswith("torch")]
    every = stages["all pins"]
    assert len(every) == len(pins) and "absl-py==2.5.1" in every and "peft==0.21.2" in every
    direct = stages["direct pins"]
    assert "peft==0.21.2" in direct and not any(line.startswith("absl-py") for line in direct)
    loose = stages["torch only"]
    assert "peft" in loose and "torch==2.13.0" in loose and not any(line.startswith("absl-py") for line in loose)


def test_the_newest_version_is_read_off_pips_answer_whatever_the_spelling_of_the_name():
    answer = ("WARNING: Location 'file:///opt/pypi/simple/lm-eval/' is ignored\n"
              "lm_eval (0.4.14)\nAvailable versions: 0.4.14, 0.4.13\n")
    assert parse_newest(answer, "lm-eval") == parse_newest(answer, "lm_eval") == "0.4.14"
    assert parse_newest("ERROR: No matching distribution found for nothing\n", "nothing") is None


def test_a_resolution_conflict_is_told_apart_from_a_failed_download():
    assert is_conflict("ERROR: Cannot install trl==1.17.0 and transformers==5.0.0 because these package versions "
                       "have conflicting dependencies.\nERROR: ResolutionImpossible: for help visit ...")
    assert not is_conflict("ERROR: Could not find a version that satisfies the requirement trl==99")


def test_a_conflict_is_reported_from_pips_first_error_on_with_its_explanation():
    from helpers.upgrade_check import Outcome, pip_error

    said = ("WARNING: Location 'file:///opt/pypi/simple/trl/' is ignored\n"
            "Collecting pandas>=2.1.1 (from trl==1.16.0)\n  Downloading pandas-3.1.1.whl (12.4 MB)\n"
            "ERROR: Cannot install trl==1.16.0 and transformers==4.40.0 because these package versions have "
            "conflicting dependencies.\n\nThe conflict is caused by:\n    The user requested transformers==4.40.0\n"
            "    trl 1.16.0 depends on transformers>=4.56.2\n\nERROR: ResolutionImpossible: for help visit ...\n")
    explained = pip_error(Outcome(1, 20.0, said))
    assert explained.startswith("ERROR: Cannot install trl==1.16.0") and "depends on transformers>=4.56.2" in explained
    assert "Downloading" not in explained and "WARNING" not in pip_error(Outcome(1, 1.0, said.split("ERROR")[0]))


def test_failures_are_read_from_a_real_pytest_run_with_their_ids_and_first_lines(tmp_path):
    (tmp_path / "test_sample.py").write_text(
        "import pytest\n"
        "def test_ok(): pass\n"
        "def test_renamed(): pytest.fail(\"trl.SFTConfig field 'x' was removed\\nmore\", pytrace=False)\n"
        "class TestGroup:\n"
        "    @pytest.fixture\n"
        "    def broken(self): raise RuntimeError('set-up broke')\n"
        "    def test_uses(self, broken): pass\n"
        "@pytest.mark.parametrize('v', ['a.b', 'c'])\n"
        "def test_p(v): assert v == 'c', 'not c'\n"
        "def test_skip(): pytest.skip('later')\n")
    (tmp_path / "test_broken.py").write_text("import not_a_module_anywhere\n")
    junit = tmp_path / "out.xml"
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "junit_family=xunit1",
                    f"--junitxml={junit}", "test_sample.py", "test_broken.py", "--continue-on-collection-errors"],
                   cwd=tmp_path, capture_output=True, timeout=120)
    result = read_junit(junit)
    assert {k: result[k] for k in ("passed", "failed", "errors", "skipped")} == {
        "passed": 2, "failed": 2, "errors": 2, "skipped": 1}
    assert {f["id"]: f["first_line"] for f in result["failures"]} == {
        "test_broken.py": "ModuleNotFoundError: No module named 'not_a_module_anywhere'",
        "test_sample.py::test_renamed": "trl.SFTConfig field 'x' was removed",
        "test_sample.py::TestGroup::test_uses": "RuntimeError: set-up broke",
        "test_sample.py::test_p[a.b]": "AssertionError: not c",
    }


def test_a_command_past_its_time_is_killed_with_the_processes_it_started(tmp_path):
    late = tmp_path / "written-late"
    grandchild = tmp_path / "grandchild.py"  # would write a file after 4 s
    grandchild.write_text(f"import pathlib, time\ntime.sleep(4)\npathlib.Path({str(late)!r}).write_text('x')\n")
    script = f"import subprocess, sys, time; subprocess.Popen([sys.executable, {str(grandchild)!r}]); time.sleep(60)"
    outcome = run([sys.executable, "-c", script], timeout=1)
    assert outcome.code is None and not outcome.ok and outcome.seconds < 30
    time.sleep(5)
    assert not late.exists()


def test_a_test_run_cut_short_still_says_what_passed_failed_and_was_running(tmp_path):
    from helpers.upgrade_check import pytest_run

    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_slow.py").write_text("import time\n"
                                          "def test_ok(): pass\n"
                                          "def test_bad(): assert False\n"
                                          "def test_slow(): time.sleep(120)\n")
    args = [str(tmp_path / "test_slow.py"), "-c", str(tmp_path / "pytest.ini"), "--rootdir", str(tmp_path)]
    result = pytest_run(Path(sys.executable), args, "cut", tmp_path, env=None, timeout=20)
    assert result["timed_out"] and (result["passed"], result["failed"]) == (1, 1)
    assert [f["first_line"] for f in result["failures"]] == [
        "(the run was stopped before pytest reported why)", "still running when the time budget ran out"]
    assert [f["id"].rsplit("::", 1)[1] for f in result["failures"]] == ["test_bad", "test_slow"]
    assert "test_ok PASSED" in (tmp_path / "cut.log").read_text()


def test_the_report_names_versions_conflicts_and_failures_and_is_written_whole(tmp_path):
    report = {
        "date": "2026-12-02T10:00:00Z", "python": "3.11.7", "budget_minutes": 120, "minutes": 4.2,
        "verdict": "the newest releases cannot be installed together, with each other or with torch 2.13.0",
        "packages": [{"name": "trl", "pinned": "1.16.0", "newest": "1.17.0"},
                     {"name": "transformers", "pinned": "5.23.0", "newest": "5.24.0", "tried": "4.40.0"}],
        "resolution": {"installed": False, "stage": None, "attempts": [
            {"stage": "all pins", "meaning": STAGES["all pins"], "installed": False, "seconds": 30.0,
             "pip_says": "The conflict is caused by:\n    trl 1.17.0 depends on transformers>=5.20"}]},
        "api": {"command": "pytest tests/test_api_surface.py", "exit_code": 1, "seconds": 120.0, "timed_out": False,
                "passed": 230, "failed": 1, "errors": 0, "skipped": 0,
                "failures": [{"id": "tests/test_api_surface.py::test_the_course_finds[trl.SFTConfig.max_length]",
                              "first_line": "trl.SFTConfig field 'max_length' was removed or renamed in trl 1.17.0"}]},
        "phases": {"lookup": 12.0, "install": 30.0},
    }
    text = render(report)
    assert "| trl | 1.16.0 | 1.17.0 | - |" in text and "| transformers | 5.23.0 | 5.24.0 (tried 4.40.0) | - |" in text
    assert "trl 1.17.0 depends on transformers>=5.20" in text and "cannot be installed together" in text
    assert ("- `tests/test_api_surface.py::test_the_course_finds[trl.SFTConfig.max_length]`: trl.SFTConfig field "
            "'max_length' was removed or renamed in trl 1.17.0") in text
    assert "230 passed, 1 failed" in text
    write_report(tmp_path, report)
    assert json.loads((tmp_path / "report.json").read_text()) == report
    assert (tmp_path / "report.md").read_text() == text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json", "report.md"]  # no partial file left


def test_a_version_to_try_must_be_exact(capsys):
    assert run_cli(main, ["--use", "trl>=1.17"]) == 2
    assert capsys.readouterr().err.strip() == "error: --use 'trl>=1.17': give NAME==VERSION, such as trl==1.17.0"
