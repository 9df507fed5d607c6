"""Errors a learner reads: one line that names the file, model or rule at fault."""
from __future__ import annotations

import sys
from collections.abc import Callable


class CourseError(Exception):
    """A problem with the learner's input, reported as one line, never a traceback."""


def run_cli(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> int:
    """Run a command-line ``main`` and turn a CourseError into ``error: ...`` and exit 2."""
    try:
        return main(argv)
    except CourseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
