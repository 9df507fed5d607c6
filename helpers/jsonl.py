"""Writing JSON Lines, the format every course file (splits, rejects, predictions) uses."""
from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path


def write_jsonl(rows: Iterable[dict], path: Path) -> Path:
    """One JSON object per line, UTF-8 kept readable (no ``\\u`` escapes); parent folders created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path
