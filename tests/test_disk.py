"""The test suite cleans up after itself: its fixtures save adapters and merged models, and kept to the end of a
session they once filled a CI machine's disk. A passing test, or a test module whose tests all passed, leaves nothing
in pytest's temporary folder; a failure keeps its files to look at.

The check runs the project's own conftest.py and pytest settings on a small suite of its own, in a second process.
"""
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

MODULE = '''
import pytest


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("saved_by_{name}")
    (folder / "model.safetensors").write_bytes(bytes(4096))
    return folder


def test_{name}(saved, tmp_path):
    (tmp_path / "own.txt").write_text("x")
    assert saved.is_dir() and {outcome}
'''


def test_what_passed_leaves_nothing_behind_and_a_failure_keeps_its_files(tmp_path):
    suite = tmp_path / "suite"
    suite.mkdir()
    shutil.copy(ROOT / "tests" / "conftest.py", suite / "conftest.py")
    (suite / "test_first.py").write_text(MODULE.format(name="passes", outcome="True"))
    (suite / "test_second.py").write_text(MODULE.format(name="fails", outcome="False"))
    basetemp = tmp_path / "base"  # given, so pytest leaves the folder itself for us to read
    done = subprocess.run([sys.executable, "-m", "pytest", "-c", str(ROOT / "pyproject.toml"), "-p", "no:cacheprovider",
                           "--basetemp", str(basetemp), str(suite)], capture_output=True, text=True, timeout=300,
                          env={"PATH": "", "COURSE_OUTPUTS": str(tmp_path / "outputs")})
    assert done.returncode == 1 and "1 failed, 1 passed" in done.stdout, done.stdout[-2000:]
    left = sorted(entry.name for entry in basetemp.iterdir() if not entry.is_symlink())  # pytest's "…current" links
    assert left == ["saved_by_fails0", "test_fails0"]
    assert (basetemp / "test_fails0" / "own.txt").exists()
