"""Exercises an instructor can assign and a learner can check: ``check("04.1", answer)`` in any notebook.

Every exercise asks for something a learner computes in the notebook from the course's helpers and data. Its
check computes the true value the same way, from the real data and model (the curated splits, the model's
config, the profile, the ICD-10-CM table), then says right or wrong and *why*, without printing the value: a
percentage where a fraction was asked, a count in millions, the tied embeddings counted twice, a one-sided
p-value. Typical mistakes are recognised by computing what that mistake would give.

Levels: *apply* repeats a step of the chapter with other numbers; *extend* asks for something the chapter did
not compute, from the same helpers. Solutions are the notebooks in ``solutions/``.
"""
from __future__ import annotations

import functools
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from helpers.errors import CourseError

LEVELS = ("apply", "extend")
CODE_PREFIX = "DIAGNOSIS_CODE:"


@dataclass(frozen=True)
class Exercise:
    """One exercise: what to do, how the answer is judged, and the mistakes worth naming."""

    id: str
    level: str
    task: str
    hint: str  # where the helpers for it are: shown with the task, never the answer
    judge: Callable[[object], tuple[bool, str]] = field(repr=False)

    @property
    def chapter(self) -> str:
        return self.id.split(".")[0]


# --- judging kinds of answer ------------------------------------------------------------------------------------

def _as_number(answer) -> float | None:
    if isinstance(answer, bool):
        return None
    try:
        value = float(answer)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(value) else value


def _close(a: float, b: float, rel: float, absolute: float) -> bool:
    return math.isclose(a, b, rel_tol=rel, abs_tol=absolute)


def judge_number(answer, truth: float, *, rel: float = 1e-3, absolute: float = 0.0, fraction: bool = False,
                 whole: bool = False, mistakes: Sequence[tuple[float, str]] = ()) -> tuple[bool, str]:
    """Right within the tolerance, or the reason it is not: the wrong kind of value, a known mistake, the scale,
    or the direction (too high or too low; the value itself stays hidden)."""
    value = _as_number(answer)
    if value is None:
        return False, f"not yet: the answer should be a number; you gave {type(answer).__name__} {answer!r}"
    if _close(value, truth, rel, absolute):
        return True, "right"
    if fraction and not 0 <= value <= 1:
        if 1 < value <= 100 and _close(value / 100, truth, rel, absolute):
            return False, "not yet: the answer should be a fraction between 0 and 1; you gave a percentage"
        return False, "not yet: the answer should be a fraction between 0 and 1"
    for wrong, message in mistakes:
        if _close(value, wrong, rel, absolute):
            return False, f"not yet: {message}"
    for factor, unit in ((1e3, "thousands"), (1e6, "millions"), (1e9, "billions"), (2**20, "MiB"), (2**30, "GiB")):
        if _close(value * factor, truth, max(rel, 1e-2), absolute):
            return False, f"not yet: that looks like the value in {unit}; give the plain number"
    if whole and value != int(value):
        return False, "not yet: the answer is a whole number (a count)"
    side = "high" if value > truth else "low"
    return False, f"not yet: too {side}, beyond the tolerance of this check"


def _code(answer) -> str | None:
    if not isinstance(answer, str):
        return None
    text = answer.strip()
    if text.upper().startswith(CODE_PREFIX):
        text = text[len(CODE_PREFIX):].strip()
    return text.upper() or None


def judge_code(answer, right: set[str], *, known: set[str] | None = None, about: str = "",
               mistakes: Callable[[str], str | None] | None = None) -> tuple[bool, str]:
    """A diagnosis code: right if it is one of ``right`` (ties allowed); otherwise why not."""
    from helpers.chat import CODE_PATTERN
    from helpers.icd10 import is_billable

    code = _code(answer)
    if code is None:
        return False, f"not yet: the answer should be an ICD-10-CM code as a string, e.g. 'M54.50'; you gave {answer!r}"
    if not CODE_PATTERN.fullmatch(f"{CODE_PREFIX} {code}"):
        return False, f"not yet: {code!r} is not written like an ICD-10-CM code (a letter, two characters, a dot, ...)"
    if code in right:
        return True, "right"
    if mistakes and (message := mistakes(code)):
        return False, f"not yet: {message}"
    if known is not None and code not in known:
        return False, f"not yet: {code} is not {about}"
    if not is_billable(code):
        return False, f"not yet: {code} is not a billable code in the current table"
    return False, "not yet: a valid code, but not the one asked for"


def judge_choice(answer, right: str, options: Sequence[str], why: dict[str, str] | None = None) -> tuple[bool, str]:
    """One of a few named options (case and surrounding spaces ignored)."""
    text = answer.strip().lower() if isinstance(answer, str) else None
    if text not in options:
        return False, f"not yet: answer one of {', '.join(repr(o) for o in options)}; you gave {answer!r}"
    if text == right:
        return True, "right"
    return False, f"not yet: {(why or {}).get(text, f'{text!r} is not it')}"


# --- facts the checks compute ------------------------------------------------------------------------------------

def ci_profile():
    from helpers.config import get_profile

    return get_profile("ci")


@functools.lru_cache(maxsize=None)
def model_config():
    """The embedded model's config (shapes only, no weights)."""
    from transformers import AutoConfig

    from helpers.models import base_model_dir

    return AutoConfig.from_pretrained(base_model_dir(ci_profile().model_id))


def _empty_model():
    """The model's modules with no weights in memory (PyTorch's meta device): enough to count parameters."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(model_config())


@functools.lru_cache(maxsize=None)
def parameter_count() -> int:
    """Every parameter of the model, the tied embedding matrix once (``model.parameters()`` yields it once)."""
    return sum(p.numel() for p in _empty_model().parameters())


@functools.lru_cache(maxsize=None)
def lora_trainable(r: int, targets: tuple[str, ...], top_layers: int | None) -> int:
    """Trainable parameters PEFT creates for LoRA of rank ``r`` on ``targets`` of the top ``top_layers`` blocks."""
    from peft import LoraConfig, get_peft_model

    layers = model_config().num_hidden_layers
    config = LoraConfig(r=r, lora_alpha=2 * r, target_modules=list(targets), task_type="CAUSAL_LM",
                        layers_to_transform=list(range(layers - top_layers, layers)) if top_layers else None)
    model = get_peft_model(_empty_model(), config)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def ci_adapter_trainable() -> int:
    """The ci profile's own adapter (chapter 4): its rank, targets and blocks."""
    from helpers.lora import TARGETS

    profile = ci_profile()
    return lora_trainable(profile.lora_r, tuple(TARGETS[profile.lora_targets]), profile.lora_top_layers)


@functools.lru_cache(maxsize=None)
def curation_report() -> dict:
    import json

    from helpers.paths import SPLITS_DIR
    from helpers.training import ensure_curated

    return json.loads((ensure_curated(SPLITS_DIR) / "report.json").read_text())


@functools.lru_cache(maxsize=None)
def reject_reasons() -> Counter:
    from helpers.jsonl import read_jsonl
    from helpers.paths import SPLITS_DIR
    from helpers.training import ensure_curated

    return Counter(r["reason"] for r in read_jsonl(ensure_curated(SPLITS_DIR) / "rejects.jsonl"))


@functools.lru_cache(maxsize=None)
def train_code_counts() -> Counter:
    from helpers.training import load_split

    return Counter(r["code"] for r in load_split("train"))


@functools.lru_cache(maxsize=None)
def ci_split_size(name: str) -> int:
    from helpers.training import load_split

    return len(load_split(name, ci_profile()))


@functools.lru_cache(maxsize=None)
def ci_catalogue() -> tuple[str, ...]:
    from helpers.rag import billable_codes
    from helpers.training import load_split

    codes = sorted({r["code"] for r in load_split("train", ci_profile())})
    return tuple(billable_codes("dataset-categories", codes))


def ci_codes() -> list[str]:
    from helpers.training import load_split

    return sorted({r["code"] for r in load_split("train", ci_profile())})


# --- the exercises -----------------------------------------------------------------------------------------------

def _ex_01_1(answer):
    reasons = reject_reasons()
    top = max(reasons.values())
    text = answer.strip() if isinstance(answer, str) else answer
    if not isinstance(text, str):
        return False, f"not yet: the answer is a rule's name as a string, as in rejects.jsonl; you gave {answer!r}"
    if text not in reasons:
        return False, (f"not yet: {text!r} is not a reason the curation wrote; the names are the 'reason' field of "
                       "rejects.jsonl (e.g. 'too_long')")
    if reasons[text] == top:
        return True, "right"
    return False, f"not yet: another rule rejected more rows than {text!r}; count every reason in rejects.jsonl"


def _ex_01_2(answer):
    report = curation_report()
    truth = report["kept"] / report["input_rows"]
    kept_of_main = report["kept"] - report["train_only"]["kept"]
    main_rows = report["input_rows"] - report["train_only"]["rows"]
    return judge_number(answer, truth, rel=0, absolute=0.0015, fraction=True, mistakes=[
        (report["rejected"] / report["input_rows"], "that is the share rejected; the question asks for the share kept"),
        (kept_of_main / main_rows, "count both input files: the second batch went through the same rules"),
    ])


def _ex_01_3(answer):
    counts = train_code_counts()
    top = max(counts.values())
    return judge_code(answer, {c for c, n in counts.items() if n == top}, known=set(counts),
                      about="a code of the curated training split",
                      mistakes=lambda code: (f"{code} has fewer training rows than the most frequent code"
                                             if code in counts else None))


def _ex_02_1(answer):
    config = model_config()
    embedding = config.vocab_size * config.hidden_size
    return judge_number(answer, parameter_count(), rel=0, absolute=0.5, whole=True, mistakes=[
        (parameter_count() + embedding, "the output layer shares its weights with the embedding "
                                        "(tie_word_embeddings): count that matrix once"),
        (parameter_count() - embedding, "the embedding matrix is parameters too"),
        (135e6, "135M is the model's name, rounded; count its parameters exactly"),
    ])


def _ex_02_2(answer):
    import torch

    from helpers.quantization import nf4

    truth = nf4(torch.randn(64, 128, generator=torch.Generator().manual_seed(0)), double_quant=True).bits_per_weight
    single = nf4(torch.randn(64, 128, generator=torch.Generator().manual_seed(0)), double_quant=False).bits_per_weight
    return judge_number(answer, truth, rel=0, absolute=5e-4, mistakes=[
        (4, "4 bits are the codes alone: every block of weights also stores its scale"),
        (single, "that is NF4 without double quantization: with it, the block scales are stored in 8 bits"),
    ])


def _ex_03_1(answer):
    config = model_config()
    truth = lora_trainable(8, ("q_proj", "v_proj"), 10)
    per_block_square = 8 * 2 * config.hidden_size  # if v_proj were hidden x hidden, as q_proj is
    return judge_number(answer, truth, rel=0, absolute=0.5, whole=True, mistakes=[
        (2 * 10 * per_block_square, "v_proj is smaller than q_proj (grouped-query attention: fewer key/value "
                                    "heads); read its shape from the model"),
        (truth * 3, "only the top 10 of the 30 blocks get adapters"),
        (truth / 2, "each adapted matrix gets two low-rank factors, A and B"),
    ])


def _ex_03_2(answer):
    trained = ci_adapter_trainable()
    total = parameter_count()
    return judge_number(answer, trained / (total + trained), rel=0.01, fraction=True, mistakes=[
        (trained / total, "the adapter's parameters belong to the model too: divide by the total with them"),
    ])


def _ex_04_1(answer):
    import math as m

    from helpers.config import get_profile
    from helpers.training import load_split

    profile = get_profile("cpu")
    rows = len(load_split("train", profile))
    per_step = profile.batch_size * profile.grad_accum
    return judge_number(answer, m.ceil(rows / per_step), rel=0, absolute=0.5, whole=True, mistakes=[
        (rows // per_step, "the last, smaller batch of the epoch is an optimizer step too"),
        (rows, "that is the number of rows; a step takes a batch of them"),
        (m.ceil(rows / per_step) * profile.epochs, "one epoch, not the whole run"),
    ])


def _ex_04_2(answer):
    from helpers.training import WARMUP_STEPS, schedule_preview

    profile = ci_profile()
    rates = schedule_preview(profile.lr_schedule, profile.learning_rate, 40, WARMUP_STEPS)
    return judge_number(answer, rates[4], rel=1e-6, mistakes=[
        (profile.learning_rate, "that is the rate after the warm-up; step 4 is still inside it"),
        (rates[5], "steps count from 0: the first optimizer step is step 0"),
    ])


def _ex_04b_1(answer):
    trained, total = ci_adapter_trainable(), parameter_count()
    return judge_number(answer, total / trained, rel=0.01, mistakes=[
        (trained / total, "that is the inverse: how many times *more* does full fine-tuning train?"),
        (100 * trained / total, "that is the adapter's share in percent; the question asks for a ratio"),
    ])


def _ex_04b_2(answer):
    total = parameter_count()
    return judge_number(answer, 8 * total, rel=1e-3, whole=True, mistakes=[
        (4 * total, "Adam keeps two moments per parameter, not one"),
        (16 * total, "count the optimizer's state only, not the weights and gradients"),
        (8 * ci_adapter_trainable(), "full fine-tuning trains every parameter, not the adapter's"),
    ])


def _ex_05_1(answer):
    from helpers.evaluation import interval95

    n = ci_split_size("test")
    low, high = interval95(n - 5, n)
    return judge_number(answer, low, rel=0, absolute=0.002, fraction=True, mistakes=[
        (high, "that is the upper end; the question asks for the lower one"),
        ((n - 5) / n, "that is the rate itself; the interval's lower end is below it"),
    ])


def _ex_05_2(answer):
    from scipy.stats import binomtest

    truth = binomtest(13, 17).pvalue
    return judge_number(answer, truth, rel=0, absolute=5e-4, fraction=True, mistakes=[
        (binomtest(13, 17, alternative="greater").pvalue, "that is one-sided: the question does not say in advance "
                                                          "which model would be better"),
        (binomtest(13, 200).pvalue, "only the rows where exactly one model is right count in McNemar's test"),
    ])


def _ex_06_1(answer):
    catalogue = ci_catalogue()
    return judge_number(answer, len(catalogue), rel=0, absolute=0.5, whole=True, mistakes=[
        (len(ci_codes()), "those are the dataset's codes; the catalogue adds their billable siblings"),
    ])


def _ex_06_2(answer):
    from helpers.rag import RRF_K, Hit, rrf

    dense = [Hit("target" if i == 1 else f"d{i}", 1.0 / i) for i in range(1, 11)]
    sparse = [Hit("target" if i == 4 else f"s{i}", 1.0 / i) for i in range(1, 11)]
    truth = next(h.score for h in rrf([dense, sparse]) if h.code == "target")
    return judge_number(answer, truth, rel=1e-4, mistakes=[
        (1 / RRF_K + 1 / (RRF_K + 3), "ranks count from 1 in reciprocal rank fusion, not from 0"),
        (1 / (RRF_K + 1), "the code is in both rankings: add its term from each"),
    ])


def _ex_06_3(answer):
    from helpers.history import changed_since

    truth = changed_since("2021-06-30").get("R05.9", "R05.9")
    return judge_code(answer, {truth}, mistakes=lambda code: (
        "that is today's code; was cough already split on that day?" if code == "R05.9" else
        "that code is not about a cough" if not code.startswith("R05") else None))


def _ex_07_1(answer):
    profile = ci_profile()
    return judge_number(answer, profile.lora_alpha / profile.lora_r, rel=1e-9, mistakes=[
        (profile.lora_r / profile.lora_alpha, "the scale is alpha divided by r"),
        (profile.lora_alpha, "that is alpha alone; LoRA divides it by the rank"),
    ])


def _ex_07_2(answer):
    total = parameter_count()
    config = model_config()
    return judge_number(answer, 2 * total, rel=1e-3, whole=True, mistakes=[
        (4 * total, "that is float32 (4 bytes a weight); bfloat16 takes 2"),
        (2 * (total + ci_adapter_trainable()), "merging folds the adapter into the weights it adapts: it adds no "
                                               "parameters"),
        (2 * (total + config.vocab_size * config.hidden_size), "the tied output layer is stored once"),
    ])


def _ex_08_1(answer):
    from helpers.dpo import sibling_code

    truth = sibling_code("J06.9")
    return judge_code(answer, {truth}, mistakes=lambda code: (
        "that is the code itself; the rejected answer is a different code" if code == "J06.9" else
        "the course's negatives are billable codes" if code.split(".")[0] == "J06" and not _billable(code) else
        "a near miss comes from the same part of the table: the nearest billable relative, not any code"
        if not code.startswith("J0") else None))


def _billable(code: str) -> bool:
    from helpers.icd10 import is_billable

    return is_billable(code)


def _ex_08_2(answer):
    import torch

    beta, chosen, rejected = 0.1, 1.0, -1.0
    margin = torch.tensor(beta * (chosen - rejected))
    truth = float(-torch.nn.functional.logsigmoid(margin))
    return judge_number(answer, truth, rel=1e-3, mistakes=[
        (float(-torch.nn.functional.logsigmoid(torch.tensor(chosen - rejected))), "beta multiplies the log-ratios "
                                                                                  "before the sigmoid"),
        (float(torch.sigmoid(margin)), "that is the probability the chosen answer wins; the loss is minus its log"),
        (-math.log(2), "the loss is never negative: it is minus the log of a probability"),
        (math.log(2), "that is the loss at the first step, when the policy is still the reference"),
    ])


def _ex_08_3(answer):
    from helpers.dpo import MISTAKES, answer_kind

    truth = answer_kind("DIAGNOSIS_CODE: R51", "R51.9")
    return judge_choice(answer, truth, ("correct", *MISTAKES), why={
        "bad_format": "the answer is in the course's format exactly; look at the code it carries",
        "wrong_code": "R51 is a category in the current table: can it be billed?",
        "correct": "the row's code is R51.9",
    })


EXERCISES: dict[str, Exercise] = {e.id: e for e in (
    Exercise("01.1", "apply", "Which curation rule rejected the most rows? Answer its reason as written in "
             "`rejects.jsonl`.", "the curated folder is `helpers.paths.SPLITS_DIR`", _ex_01_1),
    Exercise("01.2", "apply", "What share of all input rows (both batches) did curation keep? A fraction between 0 "
             "and 1.", "`report.json` in the curated folder", _ex_01_2),
    Exercise("01.3", "extend", "Which code has the most rows in the curated training split (all codes, no "
             "profile)?", "`helpers.training.load_split('train')`", _ex_01_3),
    Exercise("02.1", "apply", "How many parameters does the embedded model have (every one, the tied embedding "
             "matrix once)?", "`helpers.models.load_model()` and `model.parameters()`", _ex_02_1),
    Exercise("02.2", "extend", "How many bits per weight does NF4 with double quantization store, block scales "
             "included?", "`helpers.quantization.nf4`", _ex_02_2),
    Exercise("03.1", "apply", "How many trainable parameters does a rank-8 LoRA adapter on `q_proj` and `v_proj` "
             "of the top 10 blocks have?", "`peft.LoraConfig(layers_to_transform=...)`, "
             "`helpers.lora.count_parameters`", _ex_03_1),
    Exercise("03.2", "extend", "What share of the adapted model's parameters does the `ci` profile's adapter "
             "train? A fraction between 0 and 1.", "`helpers.training.peft_config_for(profile, model)`", _ex_03_2),
    Exercise("04.1", "apply", "How many optimizer steps does one epoch of the `cpu` profile's training take?",
             "`load_split('train', profile)`, `profile.batch_size`, `profile.grad_accum`", _ex_04_1),
    Exercise("04.2", "extend", "With the `ci` profile's schedule and warm-up, what learning rate does optimizer "
             "step 4 use (the first step is step 0)?", "`helpers.training.schedule_preview`", _ex_04_2),
    Exercise("04b.1", "apply", "How many times more parameters does full fine-tuning train than the `ci` "
             "profile's LoRA adapter?", "`helpers.lora.count_parameters` on both", _ex_04b_1),
    Exercise("04b.2", "extend", "How many bytes does AdamW's state take when fully fine-tuning the model in "
             "float32 (its two moments per parameter only)?", "the parameter count of exercise 02.1", _ex_04b_2),
    Exercise("05.1", "apply", "A model gets every row of the `ci` test split right but 5. What is the lower end of the "
             "95 % interval of its exact match? A fraction.", "`helpers.evaluation.interval95`", _ex_05_1),
    Exercise("05.2", "extend", "Two models are scored on the same rows: 4 rows only the first gets right, 13 only "
             "the second. McNemar's exact two-sided p-value?", "`helpers.mmlu.mcnemar` or "
             "`helpers.evaluation.mcnemar`", _ex_05_2),
    Exercise("06.1", "apply", "How many codes does the `ci` profile's retrieval catalogue hold (its `rag_scope` "
             "over the codes of its training rows)?", "`helpers.rag.billable_codes`", _ex_06_1),
    Exercise("06.2", "extend", "With reciprocal rank fusion (k = 60), what score does a code ranked 1st by dense and "
             "4th by sparse retrieval get?", "`helpers.rag.rrf`, `helpers.rag.Hit`", _ex_06_2),
    Exercise("06.3", "apply", "A dataset written at the end of June 2021 labels a cough that the course's data "
             "codes R05.9 today (Cough, unspecified). Which code does that dataset use?",
             "`helpers.history.changed_since`", _ex_06_3),
    Exercise("07.1", "apply", "Merging adds scale x B A to every adapted weight. What is the scale for the `ci` "
             "profile's adapter?", "the profile's `lora_r` and `lora_alpha`", _ex_07_1),
    Exercise("07.2", "extend", "How many bytes do the merged model's weights take in bfloat16?",
             "`helpers.lora.count_parameters` after `merge_and_unload`", _ex_07_2),
    Exercise("08.1", "apply", "Which code does the course use as the synthetic rejected answer for a row coded "
             "J06.9?", "`helpers.dpo.sibling_code`", _ex_08_1),
    Exercise("08.2", "apply", "The DPO loss of one pair with beta 0.1, when the policy raised the chosen answer's "
             "log-probability by 1.0 and lowered the rejected one's by 1.0, both relative to the reference?",
             "`torch.nn.functional.logsigmoid`", _ex_08_2),
    Exercise("08.3", "extend", "A row coded R51.9 is answered `DIAGNOSIS_CODE: R51`. Which kind of answer is that?",
             "`helpers.dpo.answer_kind`", _ex_08_3),
)}


def exercises(chapter: str | None = None) -> list[Exercise]:
    """Every exercise, or one chapter's (``"04"``, ``"04b"``), in order."""
    return [e for e in EXERCISES.values() if chapter is None or e.chapter == chapter]


def verdict(exercise_id: str, answer) -> tuple[bool, str]:
    """``(right, why)`` for an answer; an unknown exercise id is a one-line error naming the known ones."""
    exercise = EXERCISES.get(str(exercise_id).strip())
    if exercise is None:
        raise CourseError(f"no exercise {exercise_id!r}: the exercises are {', '.join(EXERCISES)}")
    return exercise.judge(answer)


def check(exercise_id: str, answer) -> bool:
    """Print whether ``answer`` to an exercise is right, and why not when it is not; return it as a bool."""
    right, why = verdict(exercise_id, answer)
    print(f"{exercise_id}: {why}")
    return right
