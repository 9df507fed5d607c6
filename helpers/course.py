"""Run the whole course: execute every numbered notebook in order.

``make course`` calls this. Executed copies (with their outputs) go to
``outputs/notebooks/``; ``--inplace`` writes them back over ``notebooks/``,
which is how maintainers refresh the outputs stored in the repository.
The summary of ``outputs/results.json`` is printed at the end.

On a CPU with two or more cores the chapters run in two lanes, each on half
the cores: a chapter starts as soon as the chapters it reads from are done
(:data:`NEEDS`), the longest chain of work first. Training on 2 cores is only
about 1.2 times faster than on one, so two chapters side by side finish the
course in far less time than one after the other. A GPU runs one chapter at a
time (two would share its memory), and so does a machine with little memory.
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from helpers.atomic import atomic_file
from helpers.config import get_profile
from helpers.models import base_model_dir
from helpers.paths import OUTPUTS, ROOT, show
from helpers.results import summary

NOTEBOOKS = ROOT / "notebooks"

#: What each chapter reads that other chapters write (by the number its name starts with): it starts when those
#: are done. A notebook not named here waits for every notebook before it.
NEEDS: dict[str, tuple[str, ...]] = {
    "01": (), "02": (), "03": (),  # chapters 2 and 3 load the base model only
    "04": ("01",), "04b": ("01",),  # chapter 1's curated splits
    "05": ("04",), "06": ("04",), "08": ("04",),  # chapter 4's adapter (and, for 6, its figures)
    "07": ("04", "05"),  # the adapter, and chapter 5's MMLU change for the model card
}
#: Minutes each chapter took in the ``cpu`` profile on one core of a 2-core machine (docs/experiments.md): the
#: scheduler starts the chapter with the longest chain of work after it first.
MINUTES = {"01": 0.4, "02": 0.3, "03": 0.2, "04": 8.4, "04b": 13.6, "05": 8.5, "06": 9.2, "07": 6.0, "08": 6.1}
#: Two chapters at once peak near 10 GiB in the ``cpu`` profile (chapter 4b's full fine-tune, chapter 7's servers).
LANE_MEMORY_BYTES = 12 * 2**30


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


def chapter(path: Path) -> str:
    """The number a notebook's name starts with: ``04b`` for ``04b_full_vs_lora_vs_qlora.ipynb``."""
    return path.name.split("_", 1)[0]


def needs(path: Path, chosen: list[Path]) -> set[Path]:
    """The chosen notebooks this one waits for (:data:`NEEDS`; every earlier one when it is not listed there)."""
    earlier = [p for p in chosen if p.name < path.name]
    if chapter(path) not in NEEDS:
        return set(earlier)
    return {p for p in earlier if chapter(p) in NEEDS[chapter(path)]}


def work_after(path: Path, chosen: list[Path]) -> float:
    """Minutes of the longest chain that starts with this notebook (its own minutes, then its longest follower's)."""
    followers = [p for p in chosen if path in needs(p, chosen)]
    return MINUTES.get(chapter(path), 10.0) + max((work_after(p, chosen) for p in followers), default=0.0)


def memory_bytes() -> int:
    """This machine's memory, or the lower limit a container sets."""
    from helpers.config import memory_limit_bytes

    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    limit = memory_limit_bytes()
    return min(total, limit) if limit else total


def default_lanes(profile) -> int:
    """Two lanes on a CPU with 2+ cores and the memory for two chapters; one on a GPU or a small machine."""
    cores = os.cpu_count() or 1
    return 2 if profile.device == "cpu" and cores >= 2 and memory_bytes() >= LANE_MEMORY_BYTES else 1


def start(path: Path, out: Path, threads: int) -> subprocess.Popen:
    """One notebook in a child process (``--one``) on ``threads`` cores, in its own process group."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    env.pop("COURSE_THREADS_FILE", None)  # make test's way to hand out cores; here each chapter is given its own
    return subprocess.Popen([sys.executable, "-m", "helpers.course", "--one", str(path), "--out", str(out)],
                            env=env, start_new_session=True)


def run_lanes(chosen: list[Path], out_of, lanes: int, cores: int, launch=start, poll: float = 1.0) -> str | None:
    """Run the notebooks ``lanes`` at a time, each when what it needs is done; the first failure's name, or None.

    A chapter is given ``cores // lanes`` threads, or every core when it is the last one left to run. After a
    failure no chapter starts and the running ones are stopped: their figures would be thrown away anyway.
    """
    pending, running, done = list(chosen), {}, set()
    failed = None
    try:
        while pending or running:
            while failed is None and len(running) < lanes:
                ready = [p for p in pending if needs(p, chosen) <= done]
                if not ready:
                    break
                path = max(ready, key=lambda p: (work_after(p, chosen), -chosen.index(p)))
                pending.remove(path)
                threads = cores if not running and not pending else max(1, cores // lanes)
                print(f"running {path.name} on {threads} thread{'s' * (threads > 1)} ...", flush=True)
                running[path] = (launch(path, out_of(path), threads), time.perf_counter())
            if failed is not None and not running:
                break
            if failed is None and not running and pending:  # cannot happen with NEEDS pointing backwards only
                raise RuntimeError(f"nothing can start: {[p.name for p in pending]}")
            time.sleep(poll)
            for path, (proc, began) in list(running.items()):
                code = proc.poll()
                if code is None:
                    continue
                del running[path]
                if code == 0:
                    done.add(path)
                    print(f"  {path.name} done in {(time.perf_counter() - began) / 60:.1f} min -> "
                          f"{show(out_of(path))}", flush=True)
                elif failed is None:
                    failed = path.name
                    print(f"  {path.name} failed (exit {code}); stopping the chapters still running", flush=True)
                    for other, _ in running.values():
                        stop(other)
    finally:
        for proc, _ in running.values():
            stop(proc)
    return failed


def stop(proc: subprocess.Popen) -> None:
    """End a notebook's child process (and what it started in its group); its Jupyter kernel, in a session of its
    own, exits by itself when it sees its parent gone (ipykernel watches ``JPY_PARENT_PID``)."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.course")
    parser.add_argument("--inplace", action="store_true", help="store outputs in notebooks/ (maintainers)")
    parser.add_argument("--only", nargs="*", help="notebook name prefixes to run, e.g. 04 05")
    parser.add_argument("--lanes", type=int, choices=(1, 2), default=None,
                        help="chapters run at a time (default: 2 on a CPU with 2+ cores and 12 GiB, else 1)")
    parser.add_argument("--one", type=Path, help=argparse.SUPPRESS)  # a lane's child process: this notebook only
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        execute(args.one, args.out)
        return 0
    total = time.perf_counter()
    profile = get_profile()
    # Convert the embedded model before any notebook runs, so that no notebook's stored outputs depend on
    # whether the cache already existed (the first set-up cell, helpers.notebook.setup, would otherwise store
    # the one-time conversion message).
    base_model_dir(profile.model_id)
    chosen = [p for p in notebooks() if not args.only or any(p.name.startswith(o) for o in args.only)]

    def out_of(path: Path) -> Path:
        return path if args.inplace else OUTPUTS / "notebooks" / path.name

    lanes = args.lanes or default_lanes(profile)
    if lanes > 1:
        failed = run_lanes(chosen, out_of, lanes, os.cpu_count() or 1)
        if failed:
            print(f"\nThe course stopped: {failed} failed (its error is above).")
            return 1
    else:
        for path in chosen:
            print(f"running {path.name} ...", flush=True)
            seconds = execute(path, out_of(path))
            print(f"  done in {seconds / 60:.1f} min -> {show(out_of(path))}", flush=True)
    print(f"\nCourse finished in {(time.perf_counter() - total) / 60:.1f} min.\n")
    print(summary())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
