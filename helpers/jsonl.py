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


def read_jsonl(path: Path) -> list[dict]:
    """The rows of a JSON Lines file the course wrote (blank lines skipped).

    Split on "\\n" only: ``str.splitlines()`` also breaks on U+2028 and other
    separators that ``ensure_ascii=False`` leaves inside JSON strings.
    """
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").split("\n") if line.strip()]
