"""Where the course keeps its files.

Everything a chapter produces lands under ``outputs/`` (git-ignored), named by
chapter, so that each notebook can start cold and rebuild what it needs.
``COURSE_OUTPUTS`` moves that folder: to Google Drive on Colab, so a new
runtime finds chapter 4's adapter instead of training it again, and to
``outputs/test`` for the test suite, so tests never overwrite a course run.
A relative value is taken from the repository root.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"
COURSE_OUTPUTS_DEFAULT = ROOT / "outputs"
OUTPUTS = ROOT / Path(os.environ.get("COURSE_OUTPUTS", "").strip() or COURSE_OUTPUTS_DEFAULT).expanduser()

RAW_DATASET = DATA / "raw" / "icd10_complaints_raw.jsonl"
# a second batch, written after the held-out splits were drawn: curated into train only (chapter 1)
BATCH2_DATASET = DATA / "raw" / "icd10_complaints_batch2.jsonl"
PROBE_DATASET = DATA / "benchmarks" / "general_probe.jsonl"

SPLITS_DIR = OUTPUTS / "data"
#: what helpers.train writes beside the splits it curates for a recipe; such a folder is the recipe's, used as it is
RECIPE_CURATION = "curation.json"
BASE_MODEL_DIR = OUTPUTS / "models" / "base"
ADAPTER_DIR = OUTPUTS / "adapter"
MERGED_DIR = OUTPUTS / "merged"
RESULTS_FILE = OUTPUTS / "results.json"


def show(path: os.PathLike | str) -> str:
    """A path as a learner should see it: relative to the repo, never absolute.

    Notebook outputs are committed, so an absolute path would leak the
    machine's layout (and differ on every machine, breaking nbval). Anything
    under the outputs folder reads ``outputs/...`` wherever ``COURSE_OUTPUTS``
    put it (Google Drive, the tests' own folder).
    """
    path = Path(path).resolve()
    for base, prefix in ((OUTPUTS.resolve(), Path("outputs")), (ROOT, Path())):
        try:
            return str(prefix / path.relative_to(base))
        except ValueError:
            continue
    return path.name


def file_name(path: os.PathLike | str) -> str:
    """A path the learner gave, as messages and outputs name it: as typed when relative, else through :func:`show`."""
    path = Path(path)
    return show(path) if path.is_absolute() else str(path)


# An absolute path inside text: "/" after a quote, a space, "(" or the start, then path characters.
_ABSOLUTE = re.compile(r"""(?:(?<=^)|(?<=[\s"'(\[=,]))/(?!/)[^\s"'()\[\],:;]+""", re.MULTILINE)


def strip_paths(text: str) -> str:
    """``text`` (a traceback, an error message) with every absolute path made safe to store.

    Paths under the repository read relative to it (outputs as ``outputs/...``), files of an installed
    package from the package's folder on (``transformers/trainer.py``), paths in the home folder start
    with ``~``, and any other path keeps only its file name.
    """
    home = str(Path.home())

    def safe(match: re.Match) -> str:
        raw = match.group(0)
        for base, prefix in ((str(OUTPUTS), "outputs"), (str(ROOT), "")):
            if raw == base or raw.startswith(base + "/"):
                return (prefix + raw[len(base):]).lstrip("/") or "."
        for marker in ("/site-packages/", "/dist-packages/"):
            if marker in raw:
                return raw.split(marker, 1)[1]
        if home not in ("/", "") and (raw == home or raw.startswith(home + "/")):
            return "~" + raw[len(home):]
        return Path(raw).name or raw

    return _ABSOLUTE.sub(safe, text)
