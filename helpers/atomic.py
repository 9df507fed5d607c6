"""Writing the course's artifacts so that a reader finds the old version or the new one, never half of one.

A killed process, a closed laptop or a full disk in the middle of a write must
not leave a truncated split beside a report that vouches for it, or a merged
model missing half its weights. Every file and folder the course produces is
therefore written in full under a temporary name in the same folder, flushed
to disk, and only then renamed over the old one: ``os.replace`` within one
file system is atomic, so the final name always points at a complete artifact.
Python's standard library has the pieces (``tempfile``, ``os.replace``) but no
function that joins them, so this module is that function.
"""
from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

PARTIAL = ".partial"


def _prefix(path: Path) -> str:
    """How the temporary copies of ``path`` start: hidden, named after it and after the process that writes them."""
    return f".{path.name}.{os.getpid()}."


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # someone else's process, or a system that cannot tell: leave its files alone
        return True
    return True


def clear_stale(path: os.PathLike | str) -> list[Path]:
    """Remove the temporary copies of ``path`` that a killed writer left behind (its process is gone); the removed.

    A writer killed mid-way cannot clean up: a merged model's copy is half a
    gigabyte. Copies of a process that still runs are another write in
    progress and stay.
    """
    path = Path(path)
    removed = []
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*{PARTIAL}"):
        pid = stale.name[len(path.name) + 2:].split(".", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            if stale.is_dir() and not stale.is_symlink():
                shutil.rmtree(stale, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    stale.unlink()
            removed.append(stale)
    return removed


def _fsync_dir(folder: Path) -> None:
    """Make a rename inside ``folder`` durable (a no-op where folders cannot be opened, as on Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_file(path: os.PathLike | str, binary: bool = False) -> Iterator:
    """A file handle whose content replaces ``path`` only when the block ends without an error."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clear_stale(path)
    fd, tmp = tempfile.mkstemp(prefix=_prefix(path), suffix=PARTIAL, dir=path.parent)
    fh = os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8", "newline": ""}))
    try:
        yield fh
        fh.flush()
        os.fsync(fh.fileno())
        fh.close()
        os.chmod(tmp, 0o644)  # mkstemp creates the file readable by its owner only
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        # Closing flushes what the block left in the buffer; after a failed write (a full disk) that fails
        # again, and the block's own error is the one to report.
        with contextlib.suppress(OSError):
            fh.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_path(path: os.PathLike | str) -> Iterator[Path]:
    """A temporary file beside ``path`` for another program to write (a converter, a C library); it replaces
    ``path`` only when the block ends without an error. Named like :func:`atomic_file`'s, so a crash leaves
    nothing that :func:`clear_stale` does not remove."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clear_stale(path)
    fd, tmp = tempfile.mkstemp(prefix=_prefix(path), suffix=PARTIAL, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb") as fh:  # read-only: flushing what the other program wrote to disk
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates the file readable by its owner only
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_text(path: os.PathLike | str, text: str) -> Path:
    with atomic_file(path) as fh:
        fh.write(text)
    return Path(path)


def write_bytes(path: os.PathLike | str, data: bytes) -> Path:
    with atomic_file(path, binary=True) as fh:
        fh.write(data)
    return Path(path)


def write_json(path: os.PathLike | str, obj, indent: int | None = 2) -> Path:
    """``obj`` as JSON (UTF-8 kept readable), one trailing newline."""
    return write_text(path, json.dumps(obj, indent=indent, ensure_ascii=False) + "\n")


def _old(path: Path) -> Path:
    return path.with_name(f".{path.name}.old")


def recover(path: os.PathLike | str) -> None:
    """Put back a folder that :func:`atomic_dir` had moved aside when its process died before the swap ended."""
    path = Path(path)
    if not path.exists() and _old(path).is_dir():
        os.replace(_old(path), path)


@contextlib.contextmanager
def atomic_dir(path: os.PathLike | str) -> Iterator[Path]:
    """An empty folder beside ``path`` to write into; it replaces ``path`` as a whole when the block succeeds.

    The swap is two renames (old folder aside, new folder in), since no
    system call replaces a non-empty folder: between them the old folder
    waits under ``.<name>.old`` and :func:`recover` puts it back, so an
    interrupted save always leaves a complete folder to load.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    recover(path)
    clear_stale(path)
    tmp = Path(tempfile.mkdtemp(prefix=_prefix(path), suffix=PARTIAL, dir=path.parent))
    try:
        yield tmp
        for file in tmp.rglob("*"):
            if file.is_file():
                with open(file, "rb") as fh:  # read-only: flushing what the block wrote to disk
                    os.fsync(fh.fileno())
        os.chmod(tmp, 0o755)  # mkdtemp creates the folder private to its owner
        old = None
        if path.exists():
            old = _old(path)
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        recover(path)
        raise
