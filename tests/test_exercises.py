"""Every exercise check: a right answer, worked out here another way than the check does, passes; typical wrong
answers fail with a message that says why, and never with the value itself."""
import json
import math

import pytest

from helpers.config import get_profile
from helpers.errors import CourseError
from helpers.exercises import EXERCISES, LEVELS, check, exercises, model_config, parameter_count, verdict
from helpers.paths import SPLITS_DIR
from helpers.training import ensure_curated, load_split


def curated(name: str) -> list[dict]:
    return [json.loads(line) for line in (ensure_curated(SPLITS_DIR) / name).read_text().splitlines() if line.strip()]


def lora_by_hand(r: int, modules: list[str], blocks: int) -> int:
    """LoRA's A (r x in) and B (out x r) for each adapted matrix, from the shapes in the model's config."""
    c = model_config()
    kv = c.num_key_value_heads * c.head_dim
    shapes = {"q_proj": (c.hidden_size, c.hidden_size), "k_proj": (c.hidden_size, kv), "v_proj": (c.hidden_size, kv),
              "o_proj": (c.hidden_size, c.hidden_size), "gate_proj": (c.hidden_size, c.intermediate_size),
              "up_proj": (c.hidden_size, c.intermediate_size), "down_proj": (c.intermediate_size, c.hidden_size)}
    return blocks * sum(r * (shapes[m][0] + shapes[m][1]) for m in modules)


def params_from_the_file() -> int:
    from safetensors import safe_open

    from helpers.models import base_model_dir

    with safe_open(f"{base_model_dir()}/model.safetensors", "pt") as f:
        return sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())


CI_ADAPTER = lora_by_hand(32, ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"], 10)


def right_answers() -> dict:
    report = json.loads((ensure_curated(SPLITS_DIR) / "report.json").read_text())
    splits = ("train", "val", "test", "fresh", "fresh_train")
    kept = sum(len(curated(f"{s}.jsonl")) for s in splits)
    codes = {}
    for row in curated("train.jsonl"):
        codes[row["code"]] = codes.get(row["code"], 0) + 1
    total = params_from_the_file()
    n_test = len(load_split("test", get_profile("ci")))
    # Wilson's interval, written out
    p, z = (n_test - 5) / n_test, 1.959963984540054
    centre, half = p + z * z / (2 * n_test), z * math.sqrt(p * (1 - p) / n_test + z * z / (4 * n_test ** 2))
    wilson_low = (centre - half) / (1 + z * z / n_test)
    return {
        "01.1": max(report["by_reason"], key=report["by_reason"].get),
        "01.2": kept / (kept + len(curated("rejects.jsonl"))),
        "01.3": max(codes, key=codes.get),
        "02.1": total,
        "02.2": 4 + (8 + 32 / 256) / 64,
        "03.1": lora_by_hand(8, ["q_proj", "v_proj"], 10),
        "03.2": CI_ADAPTER / (total + CI_ADAPTER),
        "04.1": math.ceil(len(load_split("train", get_profile("cpu"))) / 8),
        "04.2": 1e-3 * 4 / 10,
        "04b.1": total / CI_ADAPTER,
        "04b.2": 8 * total,
        "05.1": wilson_low,
        "05.2": min(1.0, 2 * sum(math.comb(17, k) for k in range(5)) / 2 ** 17),
        "06.1": None,  # below: from the ICD-10-CM table directly
        "06.2": 1 / 61 + 1 / 64,
        "06.3": "R05",  # cough was split into R05.1-R05.9 on 2021-10-01, after that day
        "07.1": 2.0,
        "07.2": 2 * total,
        "08.1": "J06.0",  # the other child of J06 in the ICD-10-CM table
        "08.2": -math.log(1 / (1 + math.exp(-0.2))),
        "08.3": "non_billable",
    }


@pytest.fixture(scope="module")
def right():
    import simple_icd_10_cm as icd

    answers = right_answers()
    categories = {r["code"].split(".")[0] for r in load_split("train", get_profile("ci"))}
    answers["06.1"] = len({c for cat in categories for c in [cat, *icd.get_descendants(cat)] if icd.is_leaf(c)})
    return answers


def test_every_chapter_has_two_or_three_exercises_at_both_levels():
    for chapter in ("01", "02", "03", "04", "04b", "05", "06", "07", "08"):
        found = exercises(chapter)
        assert 2 <= len(found) <= 3, chapter
        assert {e.level for e in found} == set(LEVELS), chapter


def test_the_hand_counts_agree_with_peft_and_the_model():
    from helpers.exercises import ci_adapter_trainable, lora_trainable

    assert parameter_count() == params_from_the_file()
    assert lora_trainable(8, ("q_proj", "v_proj"), 10) == lora_by_hand(8, ["q_proj", "v_proj"], 10)
    assert ci_adapter_trainable() == CI_ADAPTER


@pytest.mark.parametrize("exercise_id", list(EXERCISES))
def test_a_right_answer_passes(exercise_id, right, capsys):
    assert check(exercise_id, right[exercise_id]) is True
    assert capsys.readouterr().out.strip() == f"{exercise_id}: right"


# (exercise, wrong answer as a function of the right one, what the message must say)
WRONG = [
    ("01.1", lambda r: "too_long", "another rule rejected more rows"),
    ("01.1", lambda r: "duplicates", "not a reason the curation wrote"),
    ("01.2", lambda r: 100 * r, "you gave a percentage"),
    ("01.2", lambda r: 1 - r, "share rejected"),
    ("01.3", lambda r: "M54.50" if r != "M54.50" else "R51.9", "fewer training rows"),
    ("01.3", lambda r: "pain", "not written like an ICD-10-CM code"),
    ("02.1", lambda r: r / 1e6, "in millions"),
    ("02.1", lambda r: r + model_config().vocab_size * model_config().hidden_size, "count that matrix once"),
    ("02.1", lambda r: "135M", "should be a number"),
    ("02.2", lambda r: 4, "the codes alone"),
    ("02.2", lambda r: 4.5, "without double quantization"),
    ("03.1", lambda r: 2 * 10 * 8 * 2 * model_config().hidden_size, "v_proj is smaller"),
    ("03.1", lambda r: 3 * r, "only the top 10"),
    ("03.1", lambda r: r / 2, "two low-rank factors"),
    ("03.2", lambda r: 100 * r, "you gave a percentage"),
    ("04.1", lambda r: r - 1, "last, smaller batch"),
    ("04.1", lambda r: get_profile("cpu").epochs * r, "one epoch"),
    ("04.2", lambda r: 1e-3, "after the warm-up"),
    ("04.2", lambda r: 1e-3 * 5 / 10, "count from 0"),
    ("04b.1", lambda r: 1 / r, "inverse"),
    ("04b.2", lambda r: r / 2, "two moments"),
    ("04b.2", lambda r: 2 * r, "optimizer's state only"),
    ("05.1", lambda r: r + 0.1, "too high"),
    ("05.2", lambda r: r / 2, "one-sided"),
    ("05.2", lambda r: 100 * r, "fraction between 0 and 1"),
    ("06.1", lambda r: 8, "the dataset's codes"),
    ("06.2", lambda r: 1 / 60 + 1 / 63, "count from 1"),
    ("06.2", lambda r: 1 / 61, "add its term from each"),
    ("06.3", lambda r: "R05.9", "today's code"),
    ("06.3", lambda r: "R51", "not about a cough"),
    ("07.1", lambda r: 0.5, "alpha divided by r"),
    ("07.2", lambda r: 2 * r, "float32"),
    ("07.2", lambda r: r + 2 * CI_ADAPTER, "adds no parameters"),
    ("08.1", lambda r: "J06.9", "the code itself"),
    ("08.1", lambda r: "M54.50", "same part of the table"),
    ("08.2", lambda r: -math.log(1 / (1 + math.exp(-2))), "beta multiplies"),
    ("08.2", lambda r: math.log(2), "first step"),
    ("08.3", lambda r: "wrong_code", "can it be billed"),
    ("08.3", lambda r: "billable", "answer one of"),
]


@pytest.mark.parametrize("exercise_id,wrong,says", WRONG, ids=[f"{w[0]}-{w[2][:20]}" for w in WRONG])
def test_a_typical_wrong_answer_fails_and_says_why(exercise_id, wrong, says, right, capsys):
    answer = wrong(right[exercise_id])
    assert check(exercise_id, answer) is False
    out = capsys.readouterr().out
    assert out.startswith(f"{exercise_id}: not yet: ") and says in out, out
    if says != "answer one of":  # a multiple choice names its options, the solution among them
        assert str(right[exercise_id]) not in out  # the check never gives the solution away


def test_every_check_has_a_typical_wrong_answer_tested():
    assert {w[0] for w in WRONG} == set(EXERCISES)


def test_the_fraction_checks_tell_a_percentage_from_a_wrong_fraction(right):
    ok, why = verdict("05.1", 100 * right["05.1"])
    assert not ok and "percentage" in why
    ok, why = verdict("05.1", 250)
    assert not ok and "fraction between 0 and 1" in why and "percentage" not in why


def test_an_unknown_exercise_is_a_one_line_error_naming_the_known_ones():
    with pytest.raises(CourseError, match=r"no exercise '9\.9'.*01\.1"):
        check("9.9", 1)


def test_answers_of_the_wrong_type_are_named_not_crashed_on():
    assert verdict("04.1", None)[1].startswith("not yet: the answer should be a number")
    assert verdict("04.1", True)[1].startswith("not yet: the answer should be a number")
    assert "as a string" in verdict("08.1", 6)[1]
    assert "answer one of" in verdict("08.3", 3)[1]
