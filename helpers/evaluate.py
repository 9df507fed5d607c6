"""Score a saved model on a dataset file from the command line.

Usage::

    python -m helpers.evaluate --model outputs/merged --data outputs/data/test.jsonl

``--model`` is a merged model directory or a LoRA adapter directory (its base
is loaded from the id recorded in ``adapter_config.json``). Every row's
instruction is answered greedily; all answers go to a predictions JSONL (with
``correct`` per row, the instruction PII-scrubbed) and the last line printed is
``exact_match: <float> (n=<rows>)``. ``--general`` also measures general
knowledge on the same model, offline, through lm-evaluation-harness: MMLU
(``--mmlu``, a subset of ``helpers.mmlu``; ``mmlu_sample`` by default) and the
course's probe, printed as ``mmlu: ...`` and ``general_probe_acc: <float>
(n=<items>)`` just before it.

The data file is read by the rules of ``helpers.jsonl`` (UTF-8 with or without
a BOM; LF, CRLF or CR line ends; JSONL or a JSON array); unlike curation, any
bad row stops the run with its file:line and the rule it breaks. Every
argument, the model folder's files and every row are checked before the model
loads; nothing is written unless the run succeeds.
"""
from __future__ import annotations

import sys
from pathlib import Path

from helpers.chat import extract_code
from helpers.cli import Parser, device, existing_folder, integer, output_file, readable_file
from helpers.errors import CourseError, disk_space, run_cli, writing
from helpers.jsonl import RULES, read_values, row_problem
from helpers.paths import OUTPUTS, file_name, show

#: more rows a batch than this only costs memory: one batch already answers in parallel
MAX_BATCH_SIZE = 4096


def read_eval_rows(path: Path) -> list[dict]:
    """Rows in the dataset schema; any bad row stops the run with file:line and the rule broken."""
    name = file_name(path)
    rows = []
    for item in read_values(path):
        problem = item.problem or row_problem(item.value)
        if problem:
            raise CourseError(f"{name}:{item.line}: {RULES[problem]}" + (f" ({item.detail})" if item.detail else ""))
        if extract_code(item.value["response"]) is None:
            raise CourseError(f"{name}:{item.line}: response is not 'DIAGNOSIS_CODE: <code>'")
        rows.append(item.value)
    if not rows:
        raise CourseError(f"{name}: no rows (the file is empty)")
    return rows


def check_context(rows: list[dict], tokenizer, context: int, name: str) -> None:
    """Refuse a row whose prompt leaves no room for the answer in the model's context window."""
    from helpers.chat import prompt_messages
    from helpers.evaluation import ANSWER_TOKENS

    for number, row in enumerate(rows, start=1):
        encoded = tokenizer.apply_chat_template(prompt_messages(row["instruction"]), tokenize=True,
                                                add_generation_prompt=True)
        tokens = len(encoded["input_ids"] if hasattr(encoded, "keys") else encoded)
        if tokens + ANSWER_TOKENS > context:
            raise CourseError(f"{name}: row {number}: the prompt is {tokens:,} tokens; the model reads at most "
                              f"{context:,} including the answer")


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog="python -m helpers.evaluate", description="Exact match of a saved model on a dataset file.")
    parser.add_argument("--model", required=True, type=existing_folder, help="merged model or LoRA adapter directory")
    parser.add_argument("--data", required=True, type=readable_file, help="JSONL with instruction/response rows")
    parser.add_argument("--predictions", type=output_file, help="where to write per-row predictions (JSONL)")
    parser.add_argument("--batch-size", type=integer(1, MAX_BATCH_SIZE), default=16)
    parser.add_argument("--limit", type=integer(1), help="score only the first N rows")
    parser.add_argument("--device", type=device, default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--general", action="store_true", help="also run the general-knowledge probe (forgetting)")
    parser.add_argument("--general-limit", type=integer(1), help="probe items to run (default: all)")
    parser.add_argument("--mmlu", default="mmlu_sample", help="the MMLU subset --general scores (helpers.mmlu.SUBSETS)")
    args = parser.parse_args(argv)
    from helpers.mmlu import parse_benchmark

    if args.general:
        parse_benchmark(args.mmlu)  # an unknown subset is refused before the model loads
    out = args.predictions or output_file(str(OUTPUTS / "predictions" / f"{args.model.name}__{args.data.stem}.jsonl"))

    from helpers.models import check_model_dir, load_trained

    check_model_dir(args.model)
    rows = read_eval_rows(args.data)[: args.limit]
    from helpers.notebook import quiet

    quiet()  # a library's log line must not break the one-line error a bad model folder gets
    with disk_space("loading and scoring the model"):  # the libraries write caches (metric modules, their inputs)
        model, tokenizer = load_trained(args.model, device=args.device)  # everything above is checked: now the wait
        check_context(rows, tokenizer, model.config.max_position_embeddings, file_name(args.data))
        from helpers.evaluation import evaluate_rows, write_predictions

        # a progress bar for a person at a terminal; in a log or a pipe, stderr keeps to the one-line error
        scores = evaluate_rows(model, tokenizer, rows, batch_size=args.batch_size, progress=sys.stderr.isatty())
        probe = None
        if args.general:
            from helpers.benchmarks import general_probe

            from helpers.mmlu import score as mmlu_score

            mmlu = mmlu_score(model, tokenizer, args.mmlu)
            probe = general_probe(model, tokenizer, limit=args.general_limit, batch_size=args.batch_size)
    with writing(out):
        write_predictions(scores, out)
    wrong = sum(not p["correct"] for p in scores.predictions)
    print(f"{wrong} of {scores.n} rows wrong; predictions written to {show(out)}")
    print(f"format_compliance: {scores.format_compliance:.4f}  billable_rate: {scores.billable_rate:.4f}")
    if probe is not None:
        low, high = mmlu["interval95"]
        print(f"mmlu: {mmlu['benchmark']} {mmlu['accuracy']:.4f} (95 % {low:.4f}-{high:.4f}, n={mmlu['n']})")
        print(f"general_probe_acc: {probe['acc']:.4f} (n={probe['n']})")
    print(f"exact_match: {scores.exact_match:.4f} (n={scores.n})")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
