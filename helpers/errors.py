"""Errors a learner reads: one line that names the file, model or rule at fault."""
from __future__ import annotations

import contextlib
import errno
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path


class CourseError(Exception):
    """A problem with the learner's input, reported as one line, never a traceback."""


def one_line(text: str) -> str:
    """``text`` on one line: its lines joined with "; " (a message must never break the one-line rule)."""
    return "; ".join(line.strip() for line in str(text).splitlines() if line.strip())


def run_cli(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> int:
    """Run a command-line ``main``: a CourseError becomes ``error: ...`` on one line and exit 2, Ctrl-C exit 130."""
    try:
        return main(argv)
    except CourseError as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


#: what a disk that takes no more says: full, over quota, or past the process's file size limit
DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


@contextlib.contextmanager
def disk_space(doing: str) -> Iterator[None]:
    """A full disk anywhere in the block (a library writing its cache included) as one line: the file or the step."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in DISK_FULL:
            raise
        from helpers.paths import strip_paths

        target = exc.filename2 or exc.filename
        where = f"{strip_paths(str(target))}: cannot be written" if target else f"the disk took no more while {doing}"
        raise CourseError(f"{where} ({exc.strerror or exc})") from None


@contextlib.contextmanager
def writing(path: os.PathLike | str) -> Iterator[None]:
    """Report an OSError while writing ``path`` (a full disk, a read-only folder) as a CourseError naming both.

    A write that fails leaves nothing behind: the folders it created on the way to ``path`` go too, when empty.
    """
    path = Path(path)
    missing = [folder for folder in (path, *path.parents) if not folder.exists()]  # deepest first
    try:
        yield
    except BaseException as exc:
        for folder in missing:
            with contextlib.suppress(OSError):
                folder.rmdir()  # only an empty folder: anything else in it stays
        if not isinstance(exc, OSError):
            raise
        from helpers.paths import file_name

        raise CourseError(f"{file_name(path)}: cannot be written ({exc.strerror or exc})") from None
