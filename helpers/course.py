"""Run the whole course: execute every numbered notebook in order.

``make course`` calls this. Executed copies (with their outputs) go to
``outputs/notebooks/``; ``--inplace`` writes them back over ``notebooks/``,
which is how maintainers refresh the outputs stored in the repository.
The summary of ``outputs/results.json`` is printed at the end.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from helpers.config import get_profile
from helpers.models import base_model_dir
from helpers.paths import OUTPUTS, ROOT, show
from helpers.results import summary

NOTEBOOKS = ROOT / "notebooks"


def notebooks() -> list[Path]:
    return sorted(NOTEBOOKS.glob("[0-9][0-9]*_*.ipynb"))


def execute(path: Path, out_path: Path) -> float:
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    # coalesce_streams: a progress bar's thousands of redraws are stored as its last frame.
    NotebookClient(nb, timeout=None, kernel_name="python3", coalesce_streams=True,
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    out_path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, out_path)
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
