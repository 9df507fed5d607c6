"""Run the whole course: execute every numbered notebook in order.

``make course`` calls this. Executed copies (with their outputs) go to
``outputs/notebooks/``; ``--inplace`` writes them back over ``notebooks/``,
which is how maintainers refresh the outputs stored in the repository.
The summary of ``outputs/results.json`` is printed at the end.
"""
from __future__ import annotations

import argparse
import threading
import time
from pathlib import Path

from helpers.atomic import atomic_file
from helpers.config import get_profile
from helpers.models import base_model_dir
from helpers.paths import OUTPUTS, ROOT, show
from helpers.results import summary

NOTEBOOKS = ROOT / "notebooks"


def notebooks() -> list[Path]:
    return sorted(NOTEBOOKS.glob("[0-9][0-9]*_*.ipynb"))


class Progress:
    """Lines that tell a learner the course is moving: each slow cell when it ends, and a heartbeat every minute.

    nbclient runs a notebook as one blocking call; its cell hooks say which cell runs, and a timer thread prints
    while a long cell (chapter 4's training) is still going.
    """

    def __init__(self, name: str, cells: int, every: float = 60.0, slow: float = 10.0):
        self.name, self.cells, self.every, self.slow = name, cells, every, slow
        self.started = self.cell_started = time.perf_counter()
        self.index, self.first_line = 0, ""
        self.done = threading.Event()

    def on_cell_start(self, cell, cell_index, **kwargs):
        self.index, self.cell_started = cell_index, time.perf_counter()
        self.first_line = next((line for line in cell.source.splitlines() if line.strip()), "")[:70]

    def on_cell_executed(self, cell, cell_index, **kwargs):
        seconds = time.perf_counter() - self.cell_started
        if seconds >= self.slow:
            print(f"  {self.name}: cell {cell_index + 1}/{self.cells} took {seconds / 60:.1f} min", flush=True)

    def heartbeat(self):
        while not self.done.wait(self.every):
            running = (time.perf_counter() - self.cell_started) / 60
            print(f"  {self.name}: cell {self.index + 1}/{self.cells} running for {running:.0f} min "
                  f"({self.first_line})", flush=True)


def execute(path: Path, out_path: Path) -> float:
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    progress = Progress(path.stem, len(nb.cells))
    beat = threading.Thread(target=progress.heartbeat, daemon=True)
    beat.start()
    start = time.perf_counter()
    try:
        # coalesce_streams: a progress bar's thousands of redraws are stored as its last frame.
        NotebookClient(nb, timeout=None, kernel_name="python3", coalesce_streams=True,
                       resources={"metadata": {"path": str(path.parent)}},
                       on_cell_start=progress.on_cell_start, on_cell_executed=progress.on_cell_executed).execute()
    finally:
        progress.done.set()
    with atomic_file(out_path) as fh:  # a notebook killed mid-write must not replace the stored one
        nbformat.write(nb, fh)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.course")
    parser.add_argument("--inplace", action="store_true", help="store outputs in notebooks/ (maintainers)")
    parser.add_argument("--only", nargs="*", help="notebook name prefixes to run, e.g. 04 05")
    args = parser.parse_args(argv)
    total = time.perf_counter()
    # Convert the embedded model before any notebook runs, so that no notebook's stored outputs depend on
    # whether the cache already existed (the first set-up cell, helpers.notebook.setup, would otherwise store
    # the one-time conversion message).
    base_model_dir(get_profile().model_id)
    for path in notebooks():
        if args.only and not any(path.name.startswith(p) for p in args.only):
            continue
        out = path if args.inplace else OUTPUTS / "notebooks" / path.name
        print(f"running {path.name} ...", flush=True)
        seconds = execute(path, out)
        print(f"  done in {seconds / 60:.1f} min -> {show(out)}", flush=True)
    print(f"\nCourse finished in {(time.perf_counter() - total) / 60:.1f} min.\n")
    print(summary())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
