"""Chapter 1: curate raw instruction/response rows into train/val/test splits.

Usage::

    python -m helpers.curate data/icd10_complaints.jsonl --out outputs/data

Every input row is either kept (in exactly one split) or written to
``rejects.jsonl`` with the file, 1-based line and reason, so
``input_rows == kept + rejected`` always holds and nothing is lost silently.

Rules, applied in this order (each a small function below):

1. ``read_rows``: UTF-8 (a BOM is tolerated), JSONL or a JSON array; a row must
   be a JSON object with non-blank string ``instruction`` and ``response``.
2. ``normalise``: unicode NFKC and collapsed whitespace.
3. ``check_format``: the response reads ``DIAGNOSIS_CODE: <code>``.
4. ``check_code``: the code exists in the official ICD-10-CM table and is
   billable (a leaf of the hierarchy), via ``simple-icd-10-cm``.
5. ``dedupe``: exact duplicates (after normalisation, case-insensitive) keep
   their first occurrence.
6. ``split``: stratified by code, seeded, so each code appears in every split.
"""
from __future__ import annotations

import argparse
import json
import random
import re
import unicodedata
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from helpers.chat import prompt_completion
from helpers.errors import CourseError, run_cli
from helpers.jsonl import write_jsonl
from helpers.paths import show

RESPONSE_RE = re.compile(r"^DIAGNOSIS_CODE:\s*(\S+)$")
SPLIT_FRACTIONS = {"val": 0.1, "test": 0.2}  # the rest is train


@dataclass
class Row:
    file: str
    line: int
    raw: str
    data: dict = field(default_factory=dict)
    code: str | None = None


@dataclass
class Reject:
    file: str
    line: int
    reason: str
    raw: str

    def as_dict(self) -> dict:
        return {"file": self.file, "line": self.line, "reason": self.reason, "raw": self.raw}


def _check_fields(obj, file: str, line: int, raw: str) -> Row | Reject:
    if not isinstance(obj, dict):
        return Reject(file, line, "not_an_object", raw)
    for key in ("instruction", "response"):
        if key not in obj:
            return Reject(file, line, f"missing_{key}", raw)
        if not isinstance(obj[key], str):
            return Reject(file, line, f"non_string_{key}", raw)
        if not obj[key].strip():
            return Reject(file, line, f"empty_{key}", raw)
    return Row(file, line, raw, {"instruction": obj["instruction"], "response": obj["response"]})


def _decode(path: Path) -> str:
    if not path.exists():
        raise CourseError(f"{path}: no such file")
    if path.is_dir():
        raise CourseError(f"{path}: is a directory, expected a .jsonl or .json file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CourseError(f"{path}: cannot be read ({exc.strerror})") from None
    # Decode line by line so one bad line is one reject, not a lost file.
    return data.decode("utf-8-sig", errors="surrogateescape")


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def read_rows(path: Path) -> list[Row | Reject]:
    """Rule 1: parse a JSONL file or a JSON array file into rows and rejects."""
    text = _decode(path)
    name = str(path)
    if text.lstrip().startswith("["):
        results = _read_array(text, name)
    else:
        results = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue  # blank lines are not rows
            if not _is_utf8(line):
                results.append(Reject(name, number, "not_utf8", line.encode("utf-8", "replace").decode()))
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                results.append(Reject(name, number, "malformed_json", line))
                continue
            results.append(_check_fields(obj, name, number, line))
    if results and all(isinstance(r, Reject) and r.reason in ("malformed_json", "not_utf8") for r in results):
        raise CourseError(f"{path}: no parsable JSON row (is it a JSONL or JSON array file?)")
    return results


def _read_array(text: str, name: str) -> list[Row | Reject]:
    """Parse ``[{...}, {...}]`` element by element, keeping each element's line."""
    decoder = json.JSONDecoder()
    results: list[Row | Reject] = []
    index = text.index("[") + 1
    while True:
        while index < len(text) and text[index] in " \t\r\n,":
            index += 1
        if index >= len(text) or text[index] == "]":
            return results
        line = text.count("\n", 0, index) + 1
        try:
            obj, end = decoder.raw_decode(text, index)
        except json.JSONDecodeError:
            # The rest of the array cannot be delimited reliably: one reject for it.
            results.append(Reject(name, line, "malformed_json", text[index:].strip()))
            return results
        raw = text[index:end]
        results.append(_check_fields(obj, name, line, raw))
        index = end


def normalise(text: str) -> str:
    """Rule 2: NFKC (folds full-width and compatibility characters) and single spaces."""
    return " ".join(unicodedata.normalize("NFKC", text).split())


def check_format(row: Row) -> str | None:
    """Rule 3: the response must be exactly ``DIAGNOSIS_CODE: <code>``."""
    match = RESPONSE_RE.match(row.data["response"])
    if not match:
        return "bad_response_format"
    row.code = match.group(1).upper()
    row.data["response"] = f"DIAGNOSIS_CODE: {row.code}"
    return None


def check_code(row: Row) -> str | None:
    """Rule 4: the code must exist in ICD-10-CM and be billable (a leaf)."""
    import simple_icd_10_cm as icd

    if not icd.is_valid_item(row.code):
        return "invalid_code"
    if not icd.is_leaf(row.code):
        return "non_billable_code"
    return None


def dedupe_key(row: Row) -> tuple[str, str]:
    return (row.data["instruction"].casefold(), row.data["response"])


def split(rows: list[Row], seed: int = 0) -> dict[str, list[Row]]:
    """Rule 6: stratified by code; every code with 3+ rows lands in all three splits."""
    by_code: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        by_code[row.code].append(row)
    rng = random.Random(seed)
    splits: dict[str, list[Row]] = {"train": [], "val": [], "test": []}
    for code in sorted(by_code):
        group = by_code[code][:]
        rng.shuffle(group)
        n = len(group)
        n_test = max(1, round(n * SPLIT_FRACTIONS["test"])) if n >= 3 else 0
        n_val = max(1, round(n * SPLIT_FRACTIONS["val"])) if n >= 3 else 0
        splits["test"] += group[:n_test]
        splits["val"] += group[n_test:n_test + n_val]
        splits["train"] += group[n_test + n_val:]
    return splits


def curate(inputs: list[Path], out_dir: Path, seed: int = 0) -> dict:
    """Run every rule over ``inputs`` and write the splits, rejects and report."""
    parsed: list[Row | Reject] = []
    for path in inputs:
        parsed += read_rows(Path(path))

    kept: list[Row] = []
    rejects: list[Reject] = []
    seen: set[tuple[str, str]] = set()
    for item in parsed:
        if isinstance(item, Reject):
            rejects.append(item)
            continue
        item.data = {k: normalise(v) for k, v in item.data.items()}
        reason = check_format(item) or check_code(item)
        if reason is None:
            key = dedupe_key(item)
            reason = "exact_duplicate" if key in seen else None
            seen.add(key)
        if reason:
            rejects.append(Reject(item.file, item.line, reason, item.raw))
        else:
            kept.append(item)

    splits = split(kept, seed=seed)
    out_dir = Path(out_dir)
    for name, rows in splits.items():
        write_jsonl(({**row.data, "code": row.code, **prompt_completion(row.data)} for row in rows),
                    out_dir / f"{name}.jsonl")
    write_jsonl((reject.as_dict() for reject in rejects), out_dir / "rejects.jsonl")

    report = {
        "input_rows": len(parsed),
        "kept": len(kept),
        "rejected": len(rejects),
        "by_reason": dict(sorted(Counter(r.reason for r in rejects).items())),
        "remapped": {},
        "splits": {name: len(rows) for name, rows in splits.items()},
        "codes": len({row.code for row in kept}),
    }
    assert report["input_rows"] == report["kept"] + report["rejected"]
    (out_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.curate", description=__doc__.split("\n\n")[0])
    parser.add_argument("inputs", nargs="+", type=Path, help="JSONL or JSON-array files")
    parser.add_argument("--out", required=True, type=Path, help="output directory")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    report = curate(args.inputs, args.out, seed=args.seed)
    print(
        f"{report['input_rows']} rows read: {report['kept']} kept, {report['rejected']} rejected "
        f"-> {show(args.out)} (train {report['splits']['train']}, val {report['splits']['val']}, "
        f"test {report['splits']['test']})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))


def token_lengths(rows: list[dict], tokenizer) -> list[int]:
    """Tokens per training example: the prompt and completion rendered by the chat template."""
    lengths = []
    for row in rows:
        ids = tokenizer.apply_chat_template(row["prompt"] + row["completion"], tokenize=True)
        ids = ids["input_ids"] if hasattr(ids, "keys") else ids
        lengths.append(len(ids))
    return lengths


def render(row: dict, tokenizer) -> str:
    """The exact text the model is trained on for one row."""
    return tokenizer.apply_chat_template(row["prompt"] + row["completion"], tokenize=False)
