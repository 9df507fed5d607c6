"""Command-line arguments checked before any work starts: one line per mistake, never a usage block or a traceback.

argparse answers a bad argument with a usage block and its own exit; the
course's commands answer in one line (``error: ...``, exit 2, through
:func:`helpers.errors.run_cli`). Every argument is checked as it is parsed
(numbers within their range, files that exist and can be read, folders that
can be written, a device this machine has), so a typo is refused in a second,
before a model loads or a long run starts.
"""
from __future__ import annotations

import argparse
import os
import re
from collections.abc import Callable
from pathlib import Path

from helpers.errors import CourseError
from helpers.paths import file_name


class BadArgument(argparse.ArgumentTypeError, CourseError):
    """A value that breaks an argument's rule: argparse names the argument; called directly, it is a CourseError."""


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are :class:`CourseError` (one line) and whose options are never shortened."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)  # "--batch" must not quietly mean "--batch-size"
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        raise CourseError(f"{message} (`{self.prog} --help` lists the arguments)")


#: the largest seed NumPy takes: one range for every course command's seeds
SEED_MAX = 2**32 - 1


def integer(minimum: int = 1, maximum: int | None = None) -> Callable[[str], int]:
    """An argument type: a whole number from ``minimum`` to ``maximum`` (no upper bound when None)."""
    bounds = f"from {minimum} to {maximum}" if maximum is not None else f"of at least {minimum}"

    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise BadArgument(f"must be a whole number {bounds}, not {value[:40]!r}") from None
        if number < minimum or (maximum is not None and number > maximum):
            raise BadArgument(f"must be a whole number {bounds}, not {value[:40]}")
        return number

    parse.__name__ = "integer"
    return parse


def seed_list(value: str) -> tuple[int, ...]:
    """An argument type: seeds separated by commas (``0,1,2``), each from 0 to :data:`SEED_MAX`, none repeated."""
    try:
        seeds = tuple(int(part) for part in value.split(","))
    except ValueError:
        raise BadArgument(f"{value[:40]!r}: give whole numbers separated by commas, such as 0,1,2") from None
    if any(not 0 <= seed <= SEED_MAX for seed in seeds):
        raise BadArgument(f"{value[:40]!r}: a seed is a whole number from 0 to {SEED_MAX}")
    if len(set(seeds)) != len(seeds):
        raise BadArgument(f"{value[:40]!r}: a seed is repeated")
    return seeds


def readable_file(value: str) -> Path:
    """An argument type: a file that exists and can be read."""
    path = Path(value)
    if not path.exists():
        raise BadArgument(f"{file_name(path)}: no such file")
    if path.is_dir():
        raise BadArgument(f"{file_name(path)}: is a directory, not a file")
    if not path.is_file():
        raise BadArgument(f"{file_name(path)}: is not a regular file")
    try:
        with open(path, "rb"):  # read-only: whether this user may read it
            pass
    except OSError as exc:
        raise BadArgument(f"{file_name(path)}: cannot be read ({exc.strerror})") from None
    return path


def existing_folder(value: str) -> Path:
    """An argument type: a folder that exists."""
    path = Path(value)
    if not path.exists():
        raise BadArgument(f"{file_name(path)}: does not exist")
    if not path.is_dir():
        raise BadArgument(f"{file_name(path)}: is a file, not a folder")
    return path


def _unwritable(folder: Path) -> str | None:
    """Why files cannot be created in ``folder`` (created when missing, so its nearest existing parent decides)."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"{file_name(existing)} is a file, not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{file_name(existing)} is not writable"
    return None


def output_folder(value: str) -> Path:
    """An argument type: a folder to write into, existing or not, that this user can write."""
    path = Path(value)
    if path.exists() and not path.is_dir():
        raise BadArgument(f"{file_name(path)}: exists and is not a folder")
    problem = _unwritable(path)
    if problem:
        raise BadArgument(f"{file_name(path)}: cannot be written ({problem})")
    return path


def output_file(value: str) -> Path:
    """An argument type: a file to write (replaced if it exists), in a folder this user can write."""
    path = Path(value)
    if path.is_dir():
        raise BadArgument(f"{file_name(path)}: is a folder; name the file to write")
    problem = _unwritable(path.parent)
    if problem:
        raise BadArgument(f"{file_name(path)}: cannot be written ({problem})")
    return path


DEVICE = re.compile(r"cuda(?::(\d{1,3}))?")


def device(value: str) -> str:
    """An argument type: ``cpu``, or ``cuda`` / ``cuda:N`` when this machine has that GPU."""
    if value == "cpu":
        return value
    match = DEVICE.fullmatch(value)
    if not match:
        raise BadArgument(f"{value[:40]!r} is not a device: use cpu, cuda or cuda:N")
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        raise BadArgument(f"{value}: this machine has no CUDA GPU (use cpu)")
    if int(match.group(1) or 0) >= count:
        raise BadArgument(f"{value}: this machine has {count} CUDA GPU(s), cuda:0 to cuda:{count - 1}")
    return value
