"""One place names the course's public repository; this module makes every notebook agree with it.

``course.toml`` says where the course is published. Each notebook opens with a
Colab badge that links to its own file there, and a first code cell that
clones the course from there when it runs on a fresh machine. Both are written
from that one setting, so a fork publishes itself with one command::

    python -m helpers.publish owner/name [--branch main]     # or: make badges REPO=owner/name

``check()`` lists every notebook whose badge or first cell disagrees with
``course.toml`` (``tests/test_publish.py`` runs it), so a hand edit cannot
leave one chapter pointing elsewhere. The same command writes
``binder/requirements.txt`` from ``requirements.txt`` (see
:func:`binder_requirements`).
"""
from __future__ import annotations

import argparse
import re
import tomllib
from pathlib import Path

from helpers.atomic import write_text
from helpers.errors import CourseError, run_cli
from helpers.install import canonical, pins

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "course.toml"
NOTEBOOK_FOLDERS = ("notebooks", "solutions")
REPOSITORY_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}$")
BADGE = re.compile(r"\[!\[Open In Colab\]\(https://colab\.research\.google\.com/assets/colab-badge\.svg\)\]"
                   r"\(https://colab\.research\.google\.com/github/(?P<repo>[^/]+/[^/]+)/blob/(?P<branch>[^/]+)/"
                   r"(?P<path>[^)]+)\)")
#: Colab opens a badge's notebook on a T4 GPU runtime (its free tier) rather than a CPU one.
COLAB_METADATA = {"accelerator": "GPU", "colab": {"gpuType": "T4", "provenance": []}}

FIRST_CELL = '''\
# Set-up, safe to run again: it does only what is missing. Locally (make course, your own Jupyter) it finds the
# course and installs nothing; on Colab it clones the course once and installs what the runtime lacks.
import os, subprocess, sys, time
from pathlib import Path

REPOSITORY = "{repository}"  # from course.toml; a fork runs `make badges REPO=owner/name`
# Colab: to keep outputs/ across sessions (later chapters then reuse this one's files instead of rebuilding them),
# uncomment the next two lines before running this cell.
# from google.colab import drive; drive.mount("/content/drive")
# os.environ["COURSE_OUTPUTS"] = "/content/drive/MyDrive/icd10-course-outputs"
started = time.perf_counter()
root = next((p for p in (Path.cwd(), *Path.cwd().parents) if (p / "helpers" / "install.py").is_file()), None)
if root is None:  # a fresh runtime such as Colab: the course goes beside this notebook, once
    root = Path("course").resolve()
    if not root.is_dir():
        url = os.environ.get("COURSE_CLONE_URL") or f"https://github.com/{{REPOSITORY}}"
        subprocess.run(["git", "clone", "--quiet", "--depth", "1", url, str(root)], check=True)
        print(f"cloned {{url}} into course/")
    os.chdir(root / "notebooks")
if str(root) not in sys.path:
    sys.path.insert(0, str(root))
from helpers.install import prepare

prepare(started)'''


BINDER_REQUIREMENTS = ROOT / "binder" / "requirements.txt"
#: requirements.txt lines Binder must not install: its own Jupyter server and kernel stack lives in the same
#: environment (replacing it breaks the server), and the test tools are not needed to read the course
BINDER_LEAVES_OUT = {"jupyterlab", "ipykernel", "nbclient", "nbformat", "nbval", "pytest", "torch"}
BINDER_HEADER = """\
# mybinder.org: written by `python -m helpers.publish` from ../requirements.txt; do not edit by hand.
# What the course imports, with everything that pulls in, at the same pins; not Binder's own Jupyter server and
# kernel stack, which lives in this environment too, and not the test tools. torch's CPU build: Binder has no GPU.
--extra-index-url https://download.pytorch.org/whl/cpu
torch=={torch}+cpu
"""


def _requires(dist: str, extras: frozenset = frozenset()) -> set[tuple[str, frozenset]]:
    """What ``dist`` with ``extras`` needs: (name, extras asked of it) pairs, markers that do not apply left out."""
    import importlib.metadata as metadata

    from packaging.requirements import Requirement

    needed = set()
    for line in metadata.requires(dist) or []:
        req = Requirement(line)
        if req.marker is None or any(req.marker.evaluate({"extra": extra}) for extra in {"", *extras}):
            needed.add((canonical(req.name), frozenset(req.extras)))
    return needed


def binder_requirements(requirements: Path = ROOT / "requirements.txt") -> str:
    """``binder/requirements.txt``: the course's direct packages and what they need, at requirements.txt's pins.

    The direct packages are the lines above the file's "everything the packages above pull in" section; what
    they need is read from the installed packages' metadata, so run it in the course's own environment.
    """
    text = requirements.read_text(encoding="utf-8")
    direct_part, _, _ = text.partition("# --- everything the packages above pull in")
    pinned = pins(requirements)
    direct = [name for name in pins_in(direct_part) if name not in BINDER_LEAVES_OUT]
    seen, todo = set(), [(name, frozenset()) for name in direct]
    while todo:
        item = todo.pop()
        if item in seen or item[0] not in pinned:
            continue
        seen.add(item)
        todo += sorted(_requires(*item) - seen)
    keep = {name for name, _ in seen} - BINDER_LEAVES_OUT
    lines = [f"{name}=={pinned[name]}" for name in sorted(keep)]
    return BINDER_HEADER.format(torch=pinned["torch"]) + "\n".join(lines) + "\n"


def pins_in(text: str) -> list[str]:
    return [canonical(line.split("==")[0]) for line in text.splitlines() if "==" in line and not line.startswith("#")]


def settings(config: Path = CONFIG) -> tuple[str, str]:
    """(repository, branch) from ``course.toml``."""
    try:
        table = tomllib.loads(config.read_text(encoding="utf-8"))["repository"]
        return table["github"], table.get("branch", "main")
    except (OSError, KeyError, tomllib.TOMLDecodeError) as exc:
        raise CourseError(f"{config.name}: needs [repository] github = \"owner/name\" ({exc})") from None


def first_cell(repository: str) -> str:
    return FIRST_CELL.format(repository=repository)


def badge(repository: str, branch: str, path: str) -> str:
    return ("[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
            f"(https://colab.research.google.com/github/{repository}/blob/{branch}/{path})")


def notebooks(root: Path = ROOT) -> list[Path]:
    return sorted(p for folder in NOTEBOOK_FOLDERS for p in (root / folder).glob("*.ipynb"))


def _first(nb, kind: str):
    return next((cell for cell in nb.cells if cell.cell_type == kind), None)


def check(root: Path = ROOT) -> list[str]:
    """Every disagreement between ``course.toml`` and the notebooks, one line each (empty when all agree)."""
    import nbformat

    repository, branch = settings(root / CONFIG.name)
    problems = []
    for path in notebooks(root):
        rel = path.relative_to(root).as_posix()
        nb = nbformat.read(path, as_version=4)
        markdown, code = _first(nb, "markdown"), _first(nb, "code")
        found = BADGE.search(markdown.source) if markdown is not None else None
        if found is None:
            problems.append(f"{rel}: no Colab badge in the first markdown cell")
        else:
            if (found["repo"], found["branch"]) != (repository, branch):
                problems.append(f"{rel}: the badge points to {found['repo']}@{found['branch']}, "
                                f"course.toml to {repository}@{branch}")
            if found["path"] != rel:
                problems.append(f"{rel}: the badge opens {found['path']}, not this notebook"
                                + ("" if (root / found["path"]).is_file() else " (no such file)"))
        if code is None or code.source != first_cell(repository):
            problems.append(f"{rel}: the first code cell is not the course's set-up cell for {repository}")
        if nb.metadata.get("accelerator") != "GPU" or nb.metadata.get("colab", {}).get("gpuType") != "T4":
            problems.append(f"{rel}: the metadata does not ask Colab for a T4 GPU")
    binder = root / BINDER_REQUIREMENTS.relative_to(ROOT)
    if binder.read_text(encoding="utf-8") != binder_requirements(root / "requirements.txt"):
        problems.append(f"{binder.relative_to(root).as_posix()}: out of date with requirements.txt "
                        "(run python -m helpers.publish)")
    return problems


def publish(repository: str, branch: str = "main", root: Path = ROOT) -> list[Path]:
    """Point ``course.toml``, every badge and every first cell at ``repository``; returns the notebooks changed."""
    import nbformat

    if not REPOSITORY_NAME.match(repository):
        raise CourseError(f"repository {repository!r}: write it as owner/name, as on GitHub")
    if not re.fullmatch(r"[A-Za-z0-9._/-]+", branch):
        raise CourseError(f"branch {branch!r}: letters, digits, '.', '_', '-' and '/' only")
    config = root / CONFIG.name
    text = config.read_text(encoding="utf-8")
    text = re.sub(r'(?m)^github = ".*"$', f'github = "{repository}"', text)
    text = re.sub(r'(?m)^branch = ".*"$', f'branch = "{branch}"', text)
    write_text(config, text)
    write_text(root / BINDER_REQUIREMENTS.relative_to(ROOT), binder_requirements(root / "requirements.txt"))
    changed = []
    for path in notebooks(root):
        nb = nbformat.read(path, as_version=4)
        before = nbformat.writes(nb)
        markdown, code = _first(nb, "markdown"), _first(nb, "code")
        own = badge(repository, branch, path.relative_to(root).as_posix())
        markdown.source = BADGE.sub(lambda _: own, markdown.source) if BADGE.search(markdown.source) \
            else own + "\n\n" + markdown.source
        code.source = first_cell(repository)
        nb.metadata.update(COLAB_METADATA)
        after = nbformat.writes(nb)
        if after != before:
            write_text(path, after if after.endswith("\n") else after + "\n")
            changed.append(path)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.publish", description=__doc__.split("\n")[0])
    parser.add_argument("repository", nargs="?", help="owner/name on GitHub (default: course.toml's, to re-sync)")
    parser.add_argument("--branch", default=None, help="default: course.toml's")
    args = parser.parse_args(argv)
    repository, branch = settings()
    changed = publish(args.repository or repository, args.branch or branch)
    print(f"{len(changed)} notebooks rewritten for {args.repository or repository}")
    problems = check()
    for line in problems:
        print(f"error: {line}")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
