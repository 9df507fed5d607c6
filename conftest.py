"""Both halves of `make test` (the unit tests, and the chapters under nbval) end by checking that the course's own
outputs are as they found them: a learner who runs `make course` and then `make test` keeps the course.
"""
import hashlib
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent
#: what a course run leaves that a test run must not touch: the models, the figures and the executed chapters
COURSE_ARTIFACTS = [ROOT / "outputs" / name for name in ("merged", "adapter", "results.json", "data", "notebooks")]


def fingerprint(paths) -> dict:
    """Content hash of every file under ``paths`` (absent paths give nothing)."""
    found = {}
    for path in paths:
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else []
        for file in files:
            found[str(file.relative_to(ROOT))] = hashlib.sha256(file.read_bytes()).hexdigest()
    return found


def pytest_sessionstart(session):
    session.config._course_artifacts = fingerprint(COURSE_ARTIFACTS)


def pytest_sessionfinish(session, exitstatus):
    """Fail the run if any test or chapter changed the course's own outputs (a `make course` the learner paid for)."""
    before = getattr(session.config, "_course_artifacts", None)
    if before is None:
        return
    after = fingerprint(COURSE_ARTIFACTS)
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    if changed:
        print(f"\nerror: the tests changed the course's outputs: {', '.join(changed[:5])}", file=sys.stderr)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
