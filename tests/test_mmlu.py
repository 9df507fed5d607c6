import json
from collections import Counter

import pytest
import torch

from helpers import mmlu
from helpers.errors import CourseError


def test_the_published_counts_cover_mmlus_57_subjects_and_14042_questions():
    assert len(mmlu.PUBLISHED_TEST_COUNTS) == 57
    assert sum(mmlu.PUBLISHED_TEST_COUNTS.values()) == 14042
    # every subject is one of lm-eval's own mmlu tasks, whose description the letters format reads
    for subject in mmlu.SUBJECTS:
        assert (mmlu._harness_mmlu_dir() / f"mmlu_{subject}.yaml").is_file(), subject


def test_the_wheels_file_holds_the_published_counts_once_its_two_header_rows_are_dropped():
    # Read the file independently of the module: one JSON object per line, counted by topic.
    lines = [line for line in mmlu.wheel_file().read_text(encoding="utf-8").split("\n") if line.strip()]
    rows = [json.loads(line) for line in lines]
    assert len(rows) == 14044
    headers = [(n, r["topic"]) for n, r in enumerate(rows, start=1) if r["correct_answer"] not in "ABCD"]
    assert headers == [(11777, "elementary mathematics"), (12794, "college mathematics")]
    assert all(rows[n - 1]["question"] == "question" and rows[n - 1]["answer_a"] == "answer_a" for n, _ in headers)
    counts = Counter(r["topic"].replace(" ", "_") for r in rows if r["correct_answer"] in "ABCD")
    assert counts == mmlu.PUBLISHED_TEST_COUNTS
    # and the module reads exactly these questions, dropping exactly those two rows
    by_subject, dropped = mmlu.read_wheel()
    assert {s: len(items) for s, items in by_subject.items()} == mmlu.PUBLISHED_TEST_COUNTS
    assert [(d["line"], d["subject"]) for d in dropped] == [(11777, "elementary_mathematics"),
                                                            (12794, "college_mathematics")]


def test_rows_are_converted_to_the_harness_schema(tmp_path):
    path = tmp_path / "mmlu.jsonl"
    path.write_text(json.dumps({"question": "Q?", "answer_a": "w", "answer_b": "x", "answer_c": "y",
                                "answer_d": "z", "correct_answer": "C", "topic": "medical genetics"}) + "\n")
    by_subject, dropped = mmlu.read_wheel(path)
    assert by_subject["medical_genetics"] == [{"question": "Q?", "subject": "medical_genetics",
                                               "choices": ["w", "x", "y", "z"], "answer": 2}]
    assert dropped == []


@pytest.mark.parametrize("change, message", [
    ({"correct_answer": "E"}, "mmlu.jsonl:2: field 'correct_answer' is 'E', not one of A, B, C, D"),
    ({"topic": "astrology"}, "mmlu.jsonl:2: field 'topic' is 'astrology', not one of MMLU's 57 subjects"),
    ({"answer_b": None}, "mmlu.jsonl:2: field 'answer_b' must be a string"),
])
def test_a_malformed_row_is_reported_with_its_file_line_and_field(tmp_path, change, message):
    good = {"question": "Q?", "answer_a": "w", "answer_b": "x", "answer_c": "y", "answer_d": "z",
            "correct_answer": "A", "topic": "anatomy"}
    path = tmp_path / "mmlu.jsonl"
    path.write_text(json.dumps(good) + "\n" + json.dumps({**good, **change}) + "\n")
    with pytest.raises(CourseError, match="^" + message.replace("(", r"\(").replace(")", r"\)") + "$"):
        mmlu.read_wheel(path)


def test_counts_that_differ_from_the_published_split_are_named():
    counts = {**mmlu.PUBLISHED_TEST_COUNTS, "college_mathematics": 101}
    with pytest.raises(CourseError, match=r"college_mathematics 101 \(published 100\)$"):
        mmlu.check_counts(counts)


def test_the_medical_subset_is_the_945_questions_of_five_subjects():
    indices = mmlu.subset_indices("mmlu_medical")
    assert sorted(indices) == sorted(mmlu.MEDICAL_SUBJECTS)
    assert sum(len(p) for p in indices.values()) == 945
    assert len(mmlu.item_ids("mmlu_full")) == 14042


def test_the_sample_is_stratified_over_all_57_subjects_in_proportion_and_the_same_every_time():
    size = mmlu.SUBSETS["mmlu_sample"]["size"]
    indices = mmlu.subset_indices("mmlu_sample")
    assert sorted(indices) == list(mmlu.SUBJECTS)  # every subject has items
    assert sum(len(p) for p in indices.values()) == size
    for subject, positions in indices.items():
        quota = size * mmlu.PUBLISHED_TEST_COUNTS[subject] / 14042
        assert abs(len(positions) - quota) < 1, subject
        assert positions == sorted(set(positions)) and positions[-1] < mmlu.PUBLISHED_TEST_COUNTS[subject]
    assert mmlu.subset_indices("mmlu_sample") == indices
    assert mmlu.subset_indices("mmlu_sample_cloze") == indices  # both formats score the same items
    ids = mmlu.item_ids("mmlu_sample")
    assert len(ids) == len(set(ids)) == size and ids[0].startswith("abstract_algebra/")


def test_the_ci_subset_is_the_ten_shortest_questions_of_each_medical_subject():
    indices = mmlu.subset_indices("mmlu_ci")
    assert {s: len(p) for s, p in indices.items()} == {s: 10 for s in mmlu.MEDICAL_SUBJECTS}
    items = mmlu.load_items()
    for subject, positions in indices.items():
        longest_kept = max(mmlu._prompt_chars(items[subject][i]) for i in positions)
        others = [mmlu._prompt_chars(q) for i, q in enumerate(items[subject]) if i not in positions]
        assert longest_kept <= min(others), subject


def test_an_unknown_benchmark_is_refused_with_the_known_names():
    with pytest.raises(CourseError, match="unknown MMLU benchmark 'mmlu_medicine': use one of mmlu_medical"):
        mmlu.parse_benchmark("mmlu_medicine")


def test_the_letters_prompt_is_lm_evals_mmlu_prompt():
    context, continuations = mmlu.prompts("mmlu_ci", "anatomy", limit=1)[0]
    assert context == ("The following are multiple choice questions (with answers) about anatomy.\n\n"
                       "Male hormones are produced by which of the following?\n"
                       "A. Glans penis\nB. Prepuce\nC. Prostate\nD. Testes\nAnswer:")
    assert continuations == [" A", " B", " C", " D"]
    # lm-eval strips the question (this one ends with a space in the data)
    context, _ = mmlu.prompts("mmlu_medical", "college_medicine", limit=1)[0]
    assert context.startswith("The following are multiple choice questions (with answers) about college medicine."
                              "\n\nA police officer carries out hundreds of traffic stops every year.")
    assert context.endswith("the unconscious bias in his behavior?\nA. Behaviorist\nB. Psychoanalytic\n"
                            "C. Cognitive behavioral\nD. Humanistic\nAnswer:")


def test_the_cloze_prompt_is_the_smollm2_authors_prompt():
    context, continuations = mmlu.prompts("mmlu_ci_cloze", "anatomy", limit=1)[0]
    assert context == ("The following are questions about anatomy.\n"
                       "Question: Male hormones are produced by which of the following?\nAnswer:")
    assert continuations == [" Glans penis", " Prepuce", " Prostate", " Testes"]
    # lighteval's prompt keeps the question as it is
    context, _ = mmlu.prompts("mmlu_medical_cloze", "college_medicine", limit=1)[0]
    assert context.endswith("the unconscious bias in his behavior? \nAnswer:")


def test_the_subset_is_written_in_the_harness_schema_under_the_outputs_folder():
    from helpers.paths import OUTPUTS

    paths = mmlu.write_subset("mmlu_ci")
    assert sorted(paths) == sorted(mmlu.MEDICAL_SUBJECTS)
    assert paths["anatomy"] == OUTPUTS / "mmlu" / "mmlu_ci" / "anatomy.jsonl"
    rows = [json.loads(line) for line in paths["anatomy"].read_text().splitlines()]
    assert len(rows) == 10 and set(rows[0]) == {"question", "subject", "choices", "answer"}


@pytest.fixture(scope="module")
def ci_score(base):
    model, tokenizer = base
    return mmlu.score(model, tokenizer, "mmlu_ci", cache=False)  # through lm-eval, whatever an earlier run kept


def test_lm_eval_scores_the_ci_subset_item_by_item_on_the_embedded_model(ci_score):
    result = ci_score
    assert result["n"] == 50 and result["metric"] == "acc" and result["format"] == "letters"
    assert result["items"] == mmlu.item_ids("mmlu_ci")
    assert len(result["item_correct"]) == 50 and set(result["item_correct"]) <= {True, False}
    assert result["correct"] == sum(result["item_correct"])
    answers = [mmlu.load_items()[i.split("/")[0]][int(i.split("/")[1])]["answer"] for i in result["items"]]
    assert [c == a for c, a in zip(result["item_choice"], answers)] == result["item_correct"]
    assert 0.0 <= result["accuracy"] <= 1.0
    low, high = result["interval95"]
    assert low <= result["accuracy"] <= high
    assert sum(s["n"] for s in result["per_subject"].values()) == 50
    assert sum(s["correct"] for s in result["per_subject"].values()) == result["correct"]


def test_a_second_run_gives_the_same_items_right_and_prints_nothing(base, ci_score, capfd):
    model, tokenizer = base
    capfd.readouterr()
    again = mmlu.score(model, tokenizer, "mmlu_ci", cache=False)
    assert again["item_correct"] == ci_score["item_correct"]
    assert capfd.readouterr() == ("", "")  # no progress bars, no warnings: a notebook cell stays clean


def test_bf16_scoring_really_multiplies_in_bfloat16(base):
    # lm-eval wraps each forward pass in an autocast region of its own, which switches off one opened around it:
    # the setting must reach the harness, or a "bf16" pass silently runs in float32 at half the speed.
    model, tokenizer = base
    seen = []
    hook = model.model.layers[0].mlp.down_proj.register_forward_hook(lambda m, i, out: seen.append(out.dtype))
    try:
        for bf16 in (True, False):
            mmlu.score(model, tokenizer, "mmlu_ci", bf16=bf16, cache=False)
            assert set(seen) == {torch.bfloat16 if bf16 else torch.float32}, bf16
            seen.clear()
    finally:
        hook.remove()


def test_a_peft_model_is_scored_and_a_fresh_adapter_changes_no_answer(ci_score):
    # LoRA starts with B = 0, so a fresh adapter leaves the function unchanged: every item must come out the same.
    from peft import LoraConfig, get_peft_model

    from helpers.models import load_model

    model, tokenizer = load_model()  # its own copy: the adapter is injected in place
    peft_model = get_peft_model(model, LoraConfig(r=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    result = mmlu.score(peft_model, tokenizer, "mmlu_ci", cache=False)
    assert result["item_correct"] == ci_score["item_correct"]


def test_a_model_scored_again_is_read_from_the_cache_and_the_figures_are_the_same(base, ci_score, tmp_path,
                                                                                    monkeypatch):
    import helpers.benchmarks

    model, tokenizer = base
    monkeypatch.setattr(mmlu, "SCORES_DIR", tmp_path)
    first = mmlu.score(model, tokenizer, "mmlu_ci")
    assert first == {**ci_score, "seconds": first["seconds"]}
    assert len(list(tmp_path.glob("mmlu_ci-*.json"))) == 1

    def no_pass(*args, **kwargs):
        raise AssertionError("lm-eval ran again")

    monkeypatch.setattr(helpers.benchmarks, "evaluate_tasks", no_pass)
    assert mmlu.score(model, tokenizer, "mmlu_ci") == first
    with pytest.raises(AssertionError, match="lm-eval ran again"):  # scored another way: not the same measurement
        mmlu.score(model, tokenizer, "mmlu_ci", batch_size=4)


def test_the_fingerprint_is_the_bases_while_the_adapter_cannot_change_the_output(base):
    import torch
    from peft import LoraConfig, get_peft_model

    from helpers.models import load_model

    plain = mmlu.model_fingerprint(base[0])
    model, _ = load_model()
    peft_model = get_peft_model(model, LoraConfig(r=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    assert mmlu.model_fingerprint(peft_model) == plain  # B = 0: the base's outputs
    with torch.no_grad():
        next(w for n, w in peft_model.named_parameters() if "lora_B" in n).add_(0.01)
    trained = mmlu.model_fingerprint(peft_model)
    assert trained != plain
    with peft_model.disable_adapter():
        assert mmlu.model_fingerprint(peft_model) == plain
    assert mmlu.model_fingerprint(peft_model) == trained


def test_mcnemar_counts_the_discordant_items_and_tests_them_exactly():
    before = [True] * 8 + [False] * 1 + [True] * 20 + [False] * 11
    after = [False] * 8 + [True] * 1 + [True] * 20 + [False] * 11
    test = mmlu.mcnemar(before, after)
    # b = 8 lost, c = 1 gained: P = 2 * (C(9,0) + C(9,1)) / 2^9 = 20 / 512
    assert test == {"n": 40, "b": 8, "c": 1, "p_value": pytest.approx(20 / 512)}
    assert mmlu.verdict(test) == "changed"
    balanced = mmlu.mcnemar([True] * 5 + [False] * 3, [False] * 5 + [True] * 3)
    # b = 5, c = 3: P = 2 * (1 + 8 + 28 + 56) / 256
    assert balanced["p_value"] == pytest.approx(186 / 256)
    assert mmlu.verdict(balanced) == "no detectable change"
    assert mmlu.mcnemar([True, False], [True, False]) == {"n": 2, "b": 0, "c": 0, "p_value": 1.0}


def test_mcnemar_refuses_lists_of_different_lengths():
    with pytest.raises(CourseError, match="the same items: 3 results before, 2 after"):
        mmlu.mcnemar([True, True, False], [True, False])


def test_compare_reports_the_change_and_refuses_different_benchmarks():
    def result(benchmark, correct):
        return {"benchmark": benchmark, "items": [f"anatomy/{i}" for i in range(len(correct))],
                "item_correct": correct, "accuracy": sum(correct) / len(correct)}

    before = result("mmlu_ci", [True] * 9 + [False] * 11)
    after = result("mmlu_ci", [False] * 9 + [False] * 11)
    table = mmlu.compare(before, after)
    assert table["b"] == 9 and table["c"] == 0 and table["change"] == pytest.approx(-0.45)
    assert table["verdict"] == "changed"
    with pytest.raises(CourseError, match="cannot compare mmlu_ci with mmlu_medical"):
        mmlu.compare(before, result("mmlu_medical", [True] * 20))
