"""``outputs/results.json``: each chapter's headline figures, one key per chapter.

Notebooks call :func:`record`; ``python -m helpers.results`` prints the
summary table that ``make course`` ends with.
"""
from __future__ import annotations

import json
import platform
from datetime import datetime, timezone
from pathlib import Path

from helpers.atomic import write_json
from helpers.paths import RESULTS_FILE


def load(path: Path = RESULTS_FILE) -> dict:
    path = Path(path)
    return json.loads(path.read_text()) if path.is_file() else {}


def record(chapter: str, figures: dict, path: Path = RESULTS_FILE) -> dict:
    """Merge ``figures`` under ``chapter`` and stamp when and where they were measured.

    ``make course`` runs two chapters at a time on a multi-core CPU: the read, merge and write happen under a lock
    file beside the results, so one chapter's figures never overwrite another's.
    """
    from filelock import FileLock

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(f"{path}.lock"):
        results = load(path)
        results[chapter] = figures
        results["_meta"] = {
            "updated": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "machine": f"{platform.machine()}, {platform.system()}",
        }
        write_json(path, results)  # atomic: a run killed here leaves the previous file whole
    return results


def _flatten(prefix: str, value) -> list[tuple[str, str]]:
    if isinstance(value, dict):
        rows = []
        for key, sub in value.items():
            rows += _flatten(f"{prefix}.{key}" if prefix else key, sub)
        return rows
    if isinstance(value, float):
        return [(prefix, f"{value:.4g}")]
    return [(prefix, str(value))]


def summary(results: dict | None = None) -> str:
    results = load() if results is None else results
    lines = []
    for chapter in sorted(k for k in results if not k.startswith("_")):
        for key, value in _flatten("", results[chapter]):
            lines.append(f"{chapter:<22} {key:<40} {value}")
    if not lines:
        return "no results yet: run `make course`"
    header = f"{'chapter':<22} {'figure':<40} value"
    return "\n".join([header, "-" * len(header), *lines])


def main() -> int:
    print(summary())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
