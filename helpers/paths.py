"""Where the course keeps its files.

Everything a chapter produces lands under ``outputs/`` (git-ignored), named by
chapter, so that each notebook can start cold and rebuild what it needs.
"""
from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"
OUTPUTS = Path(os.environ.get("COURSE_OUTPUTS", ROOT / "outputs"))

RAW_DATASET = DATA / "raw" / "icd10_complaints_raw.jsonl"
# a second batch, written after the held-out splits were drawn: curated into train only (chapter 1)
BATCH2_DATASET = DATA / "raw" / "icd10_complaints_batch2.jsonl"
PROBE_DATASET = DATA / "benchmarks" / "general_probe.jsonl"

SPLITS_DIR = OUTPUTS / "data"
BASE_MODEL_DIR = OUTPUTS / "models" / "base"
ADAPTER_DIR = OUTPUTS / "adapter"
MERGED_DIR = OUTPUTS / "merged"
RESULTS_FILE = OUTPUTS / "results.json"


def show(path: os.PathLike | str) -> str:
    """A path as a learner should see it: relative to the repo, never absolute.

    Notebook outputs are committed, so an absolute path would leak the
    machine's layout (and differ on every machine, breaking nbval).
    """
    path = Path(path)
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return path.name
