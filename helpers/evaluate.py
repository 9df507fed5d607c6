"""Score a saved model on a dataset file from the command line.

Usage::

    python -m helpers.evaluate --model outputs/merged --data outputs/data/test.jsonl

``--model`` is a merged model directory or a LoRA adapter directory (its base
is loaded from the id recorded in ``adapter_config.json``). Every row's
instruction is answered greedily; all answers go to a predictions JSONL (with
``correct`` per row) and the last line printed is
``exact_match: <float> (n=<rows>)``. ``--general`` also runs the course's
general-knowledge probe (lm-evaluation-harness) on the same model and prints
``general_probe_acc: <float> (n=<items>)`` just before it.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from helpers.chat import extract_code
from helpers.errors import CourseError, run_cli
from helpers.paths import OUTPUTS, show


def read_eval_rows(path: Path) -> list[dict]:
    """Rows in the dataset schema; any bad row stops the run with file:line and the rule broken."""
    path = Path(path)
    if not path.is_file():
        raise CourseError(f"{path}: no such file" if not path.exists() else f"{path}: not a file")
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8-sig").split("\n"), start=1):  # not splitlines(): U+2028
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CourseError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise CourseError(f"{path}:{number}: a row must be a JSON object")
        for key in ("instruction", "response"):
            if not isinstance(row.get(key), str) or not row[key].strip():
                raise CourseError(f"{path}:{number}: row has no '{key}' string")
        if extract_code(row["response"]) is None:
            raise CourseError(f"{path}:{number}: response is not 'DIAGNOSIS_CODE: <code>'")
        rows.append(row)
    if not rows:
        raise CourseError(f"{path}: no rows (the file is empty)")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.evaluate",
                                     description="Exact match of a saved model on a dataset file.")
    parser.add_argument("--model", required=True, type=Path, help="merged model or LoRA adapter directory")
    parser.add_argument("--data", required=True, type=Path, help="JSONL with instruction/response rows")
    parser.add_argument("--predictions", type=Path, help="where to write per-row predictions (JSONL)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--limit", type=int, help="score only the first N rows")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--general", action="store_true", help="also run the general-knowledge probe (forgetting)")
    parser.add_argument("--general-limit", type=int, help="probe items to run (default: all)")
    args = parser.parse_args(argv)

    rows = read_eval_rows(args.data)[: args.limit]
    from helpers.evaluation import evaluate_rows, write_predictions
    from helpers.models import load_trained

    model, tokenizer = load_trained(args.model, device=args.device)
    scores = evaluate_rows(model, tokenizer, rows, batch_size=args.batch_size)
    out = args.predictions or OUTPUTS / "predictions" / f"{args.model.name}__{args.data.stem}.jsonl"
    write_predictions(scores, out)
    wrong = sum(not p["correct"] for p in scores.predictions)
    print(f"{wrong} of {scores.n} rows wrong; predictions written to {show(out)}")
    print(f"format_compliance: {scores.format_compliance:.4f}  billable_rate: {scores.billable_rate:.4f}")
    if args.general:
        from helpers.benchmarks import general_probe

        probe = general_probe(model, tokenizer, limit=args.general_limit, batch_size=args.batch_size)
        print(f"general_probe_acc: {probe['acc']:.4f} (n={probe['n']})")
    print(f"exact_match: {scores.exact_match:.4f} (n={scores.n})")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
