"""Chapter 8: preference pairs from the model's own answers, and DPO continuing an adapter against a frozen copy."""
import dataclasses

import pytest
import torch

from helpers.chat import extract_code, prompt_messages
from helpers.config import get_profile
from helpers.curate import normalise, phrasing_key
from helpers.dpo import (
    REFERENCE_ADAPTER,
    SYNTHETIC,
    Run,
    adapter_weights,
    answer_kind,
    build_pairs,
    choose,
    decontaminate_pairs,
    grid_search,
    load_policy,
    make_dpo_trainer,
    reference_report,
    save_policy,
    sibling_code,
    writes_reference,
)
from helpers.evaluation import mcnemar, score
from helpers.training import load_split

#: a small, fast run: 2 pairs a step, adapters on the top 2 blocks
TINY = dict(dpo_batch_size=2, dpo_steps=1, lora_top_layers=2, lora_r=4, lora_alpha=8, eval_batch_size=8)


@pytest.fixture(scope="module")
def profile():
    return dataclasses.replace(get_profile("ci"), **TINY)


@pytest.fixture(scope="module")
def sft_adapter(tmp_path_factory, profile):
    """A stand-in for chapter 4's adapter: LoRA on the top blocks with random (non-zero) weights, saved the way
    chapter 4 saves one, so the model it makes differs from the base model."""
    from peft import get_peft_model

    from helpers.lora import lora_config
    from helpers.models import load_model

    model, tokenizer = load_model()
    config = lora_config(r=4, alpha=8, targets="all-linear", dropout=0.0, top_layers=2, num_layers=30)
    config.init_lora_weights = False  # random A and B: an adapter that has learned something
    torch.manual_seed(0)
    peft_model = get_peft_model(model, config)
    out = tmp_path_factory.mktemp("sft") / "adapter"
    peft_model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def val_rows(n=4):
    return load_split("val", get_profile("ci"))[:n]


def train_pairs(n=2):
    rows = load_split("train", get_profile("ci"))[:n]
    pairs, _ = build_pairs(rows, [r["response"] for r in rows], fill_to=n)
    return pairs


# --- pairs ----------------------------------------------------------------------------------------

def test_answer_kinds():
    assert answer_kind("DIAGNOSIS_CODE: M54.50", "M54.50") == "correct"
    assert answer_kind("DIAGNOSIS_CODE: M54.51", "M54.50") == "wrong_code"
    assert answer_kind("DIAGNOSIS_CODE: M54.5", "M54.50") == "non_billable"  # a category, not billable
    assert answer_kind("The code is DIAGNOSIS_CODE: M54.50, I think", "M54.50") == "bad_format"
    assert answer_kind("lower back pain", "M54.50") == "bad_format"


def test_the_nearest_sibling_is_another_billable_code_close_in_the_table():
    from helpers.icd10 import is_billable

    assert sibling_code("M54.50") == "M54.51"
    assert sibling_code("S93.401A") == "S93.401D"  # initial vs subsequent encounter
    for code in ("R42", "I10", "J06.9", "Z00.00"):
        sibling = sibling_code(code)
        assert sibling != code and is_billable(sibling)
        assert sibling[0] == code[0]  # the same chapter letter: a near miss, not a random code


def test_pairs_count_up_drop_duplicates_and_never_reject_the_chosen_answer():
    rows = load_split("train", get_profile("ci"))[:12]
    answers = [r["response"] for r in rows]
    sibling_of_first = sibling_code(rows[0]["code"])
    answers[0] = f"DIAGNOSIS_CODE: {sibling_of_first}"        # a wrong, billable code
    answers[1] = "DIAGNOSIS_CODE: M54.5"                        # a code that is not billable
    answers[2] = "Sounds like a cold to me."                    # no code at all
    answers[3] = "DIAGNOSIS_CODE:   " + rows[3]["code"]         # the right code, spaced oddly: same once normalised
    # the first row again under another wording of its instruction: the same complaint and rejected answer
    twin = {**rows[0], "instruction": rows[0]["instruction"].upper()}
    rows, answers = [*rows, twin], [*answers, answers[0]]

    pairs, report = build_pairs(rows, answers, fill_to=10)

    assert report["answers"] == {"correct": 8, "wrong_code": 2, "non_billable": 1, "bad_format": 2}
    assert sum(report["answers"].values()) == report["rows"] == 13
    mistakes = sum(v for k, v in report["answers"].items() if k != "correct")
    own = sum(v for k, v in report["pairs"].items() if k != SYNTHETIC)
    assert own + report["dropped"]["duplicate"] + report["dropped"]["chosen_equals_rejected"] == mistakes
    assert report["dropped"] == {"duplicate": 1, "chosen_equals_rejected": 1, "no_sibling": 0}
    assert report["pairs"][SYNTHETIC] == 10 - own and report["total"] == len(pairs) == 10
    for p in pairs:
        assert normalise(p["chosen"][0]["content"]) != normalise(p["rejected"][0]["content"])
        assert p["prompt"] == prompt_messages(p["instruction"])
    keys = [(phrasing_key(p["instruction"]), normalise(p["rejected_answer"])) for p in pairs]
    assert len(keys) == len(set(keys))
    synthetic = [p for p in pairs if p["kind"] == SYNTHETIC]
    assert all(extract_code(p["rejected_answer"]) == sibling_code(p["code"]) for p in synthetic)
    assert len({p["code"] for p in synthetic}) == min(len(synthetic), len({r["code"] for r in rows}))  # spread


def test_pairs_hold_no_test_complaint():
    profile = get_profile("ci")
    train, held_out = load_split("train", profile), load_split("val", profile) + load_split("test", profile)
    pairs, _ = build_pairs(train, [r["response"] for r in train], fill_to=len(train))
    kept, removed = decontaminate_pairs(pairs, held_out)
    assert removed == [] and len(kept) == len(pairs)  # chapter 1 kept held-out complaints out of train already
    held_phrasings = {phrasing_key(r["instruction"]) for r in held_out}
    assert not held_phrasings & {phrasing_key(p["instruction"]) for p in kept}

    # a test complaint under another instruction wording is caught
    leak = held_out[-1]
    complaint = leak["instruction"].split(":", 1)[-1]
    reworded = {"instruction": f"Here is what the patient told the nurse:{complaint}", "response": leak["response"],
                "code": leak["code"]}
    leaked, _ = build_pairs([reworded], [f"DIAGNOSIS_CODE: {sibling_code(leak['code'])}"])
    kept, removed = decontaminate_pairs(pairs[:5] + leaked, held_out)
    assert [p["instruction"] for p in removed] == [reworded["instruction"]] and len(kept) == 5


def test_a_forward_pass_tells_which_answers_greedy_decoding_writes(base):
    from helpers.evaluation import generate_answers

    model, tokenizer = base
    instructions = ["Reply with one word: what colour is the sky on a clear day?",
                    "Answer yes or no: is water wet?", "Say hello."]
    answers = generate_answers(model, tokenizer, instructions, max_new_tokens=48, progress=False)
    # rows whose reference is what the model itself writes (when it stopped on its own), and rows it would not write
    own = [{"instruction": i, "response": a} for i, a in zip(instructions, answers)]
    other = [{"instruction": i, "response": "DIAGNOSIS_CODE: M54.50"} for i in instructions]
    ended = [len(tokenizer(a)["input_ids"]) < 40 for a in answers]
    assert any(ended)
    verdicts = writes_reference(model, tokenizer, own + other, batch_size=4)
    assert verdicts[len(own):] == [False] * len(other)
    assert [v for v, e in zip(verdicts[:len(own)], ended) if e] == [True] * sum(ended)


# --- training -------------------------------------------------------------------------------------

def test_one_dpo_step_moves_the_adapter_and_leaves_the_sft_reference_alone(profile, sft_adapter, tmp_path):
    from helpers.models import load_trained

    model, tokenizer = load_policy(profile, sft_adapter)
    sft = adapter_weights(model, "default")
    trainer = make_dpo_trainer(model, tokenizer, profile, train_pairs(2), beta=0.1, learning_rate=1e-3, steps=1,
                               output_dir=tmp_path / "checkpoints")
    report = reference_report(trainer)
    assert report["adapter"] == REFERENCE_ADAPTER and report["same_keys_as_sft"]
    assert report["max_abs_difference_from_sft"] == 0.0 and report["trainable_tensors"] == 0

    trainer.train()

    after = adapter_weights(trainer.model, "default")
    reference = adapter_weights(trainer.model, REFERENCE_ADAPTER)
    assert any(not torch.equal(after[k], sft[k]) for k in sft)  # the policy moved
    assert all(torch.equal(reference[k], sft[k]) for k in sft)  # the reference did not
    # The first step's rewards are measured before its update: zero only if the reference is the SFT model
    # (against the base model, the random adapter's log-probability ratios would be far from zero).
    first = trainer.state.log_history[0]
    assert first["rewards/chosen"] == pytest.approx(0.0, abs=1e-4)
    assert first["rewards/rejected"] == pytest.approx(0.0, abs=1e-4)

    saved = save_policy(trainer.model, tokenizer, tmp_path / "dpo", profile)
    assert not (saved / REFERENCE_ADAPTER).exists()  # the reference copy stays out of the saved adapter
    reloaded, _ = load_trained(saved)
    assert all(torch.equal(w, after[k]) for k, w in adapter_weights(reloaded, "default").items())


def test_the_setting_is_chosen_on_validation_rows_and_never_reads_the_test_split(profile, sft_adapter, monkeypatch,
                                                                                tmp_path):
    import helpers.dpo
    import helpers.training

    rows, pairs = val_rows(4), train_pairs(2)
    real_load_split = helpers.training.load_split

    def no_test(name, *args, **kwargs):
        if name == "test":
            raise AssertionError("the grid search read the test split")
        return real_load_split(name, *args, **kwargs)

    monkeypatch.setattr(helpers.training, "load_split", no_test)
    monkeypatch.setattr(helpers.dpo, "DPO_DIR", tmp_path)
    runs = grid_search(profile, pairs, rows, betas=(0.1,), learning_rates=(1e-4, 1e-3), steps=1,
                       adapter_dir=sft_adapter)
    assert [(r.beta, r.learning_rate) for r in runs] == [(0.1, 1e-4), (0.1, 1e-3)]
    assert all(r.val.n == len(rows) and [p["instruction"] for p in r.val.predictions] ==
               [row["instruction"] for row in rows] for r in runs)
    assert choose(runs).val.exact_match == max(r.val.exact_match for r in runs)


def scored(correct: list[bool], rows=None):
    rows = rows or [{"instruction": f"complaint {i}", "response": "DIAGNOSIS_CODE: M54.50"} for i in range(len(correct))]
    return score(rows, ["DIAGNOSIS_CODE: M54.50" if ok else "DIAGNOSIS_CODE: M54.51" for ok in correct])


def run(beta, lr, correct):
    return Run(beta=beta, learning_rate=lr, loss="sigmoid", steps=1, val=scored(correct), adapter_dir=None,
               train_seconds=0.0)


def test_choose_takes_the_best_validation_score_and_breaks_ties_toward_the_sft_model():
    best = run(0.1, 1e-4, [True, True, False])
    assert choose([run(0.5, 1e-4, [True, False, False]), best]) is best
    tie = [run(0.1, 1e-4, [True, False]), run(0.5, 5e-4, [False, True]), run(0.5, 1e-4, [True, False])]
    assert (choose(tie).beta, choose(tie).learning_rate) == (0.5, 1e-4)
    with pytest.raises(ValueError):
        choose([])


def test_mcnemar_counts_only_the_rows_where_the_models_disagree():
    first = scored([True] * 10 + [False] * 10 + [True] * 5)
    second = scored([True] * 10 + [True] * 10 + [False] * 5)
    result = mcnemar(first, second)
    assert (result["only_first"], result["only_second"]) == (5, 10)
    assert 0.3 < result["p_value"] < 0.31  # binomial test of 10 of 15: not a difference yet
    assert mcnemar(first, first)["p_value"] == 1.0
    with pytest.raises(ValueError, match="same rows"):
        mcnemar(first, scored([True] * 25, rows=[{"instruction": f"other {i}", "response": "DIAGNOSIS_CODE: M54.50"}
                                                 for i in range(25)]))


def test_the_change_interval_keeps_rows_paired_and_is_zero_when_nothing_changed():
    from helpers.dpo import change_interval

    before = scored([True] * 10 + [False] * 30)
    after = scored([True] * 10 + [True] * 20 + [False] * 10)  # 20 rows gained, none lost
    found = change_interval(before, after)
    assert found["change"] == pytest.approx(0.5) and found["n"] == 40
    low, high = found["ci95"]
    assert 0 < low < 0.5 < high <= 1.0  # every resample gains rows: the interval stays above zero
    assert change_interval(before, before) == {"change": 0.0, "ci95": (0.0, 0.0), "n": 40}
    mixed = change_interval(before, scored([False] * 5 + [True] * 5 + [True] * 5 + [False] * 25))  # 5 lost, 5 won
    assert mixed["change"] == 0.0 and mixed["ci95"][0] < 0 < mixed["ci95"][1]
    with pytest.raises(ValueError, match="same rows"):
        change_interval(before, scored([True] * 40, rows=[{"instruction": f"other {i}",
                                                          "response": "DIAGNOSIS_CODE: M54.50"} for i in range(40)]))
