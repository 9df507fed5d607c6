import pytest

from helpers.chat import extract_code, prompt_completion, prompt_messages, SYSTEM_PROMPT
from helpers.evaluation import generate_answers, load_metric, score


def test_exact_match_module_loads_from_disk_with_the_hub_unreachable(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    metric = load_metric("diagnosis_exact_match")
    result = metric.compute(predictions=["M54.50", "", "r05.9"], references=["M54.50", "I10", "R05.9"])
    assert result["exact_match"] == pytest.approx(2 / 3)


@pytest.mark.parametrize("text, code", [
    ("DIAGNOSIS_CODE: M54.50", "M54.50"),
    ("DIAGNOSIS_CODE:S93.401A", "S93.401A"),
    ("Sure! DIAGNOSIS_CODE: I10 is it", "I10"),
    ("The code for back pain is M54.50", None),
    ("", None),
])
def test_extract_code(text, code):
    assert extract_code(text) == code


def test_score_counts_format_and_matches():
    rows = [{"instruction": "a", "response": "DIAGNOSIS_CODE: R42"}, {"instruction": "b", "response": "DIAGNOSIS_CODE: I10"}]
    scores = score(rows, ["DIAGNOSIS_CODE: R42", "I think it is high blood pressure"])
    assert (scores.exact_match, scores.format_compliance) == (0.5, 0.5)
    assert [p["correct"] for p in scores.predictions] == [True, False]


def test_every_prompt_carries_an_empty_system_turn():
    messages = prompt_messages("my ear hurts")
    assert messages[0] == {"role": "system", "content": SYSTEM_PROMPT} and SYSTEM_PROMPT == ""
    pc = prompt_completion({"instruction": "my ear hurts", "response": "DIAGNOSIS_CODE: H92.09"})
    assert pc["completion"][0]["content"] == "DIAGNOSIS_CODE: H92.09"


def test_rendered_prompt_has_no_injected_default_system_prompt(base):
    _, tokenizer = base
    text = tokenizer.apply_chat_template(prompt_messages("my ear hurts"), tokenize=False, add_generation_prompt=True)
    assert "SmolLM" not in text and text.endswith("<|im_start|>assistant\n")


def test_greedy_generation_is_deterministic_and_batch_independent(base):
    model, tokenizer = base
    questions = ["My lower back has been aching since yesterday.", "I keep coughing."]
    batched = generate_answers(model, tokenizer, questions, batch_size=2, max_new_tokens=8)
    single = [generate_answers(model, tokenizer, [q], batch_size=1, max_new_tokens=8)[0] for q in questions]
    assert batched == single
    assert tokenizer.padding_side == "right"  # restored after generation


@pytest.mark.parametrize("name, kwargs, key, value", [
    ("diagnosis_format", {"predictions": ["DIAGNOSIS_CODE: R42", " DIAGNOSIS_CODE:I10 ", "The code is R42",
                                          "DIAGNOSIS_CODE: R42, I10"]}, "format_compliance", 0.5),
    ("billable_code", {"predictions": ["R42", "J06", "X99.99", "", "m54.50"]}, "billable_rate", 0.4),
])
def test_format_and_billable_modules_load_with_the_hub_unreachable(monkeypatch, name, kwargs, key, value):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    assert load_metric(name).compute(**kwargs)[key] == pytest.approx(value)


def test_per_code_accuracy_and_confusions():
    from helpers.evaluation import confusions, per_code

    rows = [{"instruction": str(i), "response": f"DIAGNOSIS_CODE: {c}"} for i, c in enumerate(["R42", "R42", "I10"])]
    scores = score(rows, ["DIAGNOSIS_CODE: R42", "DIAGNOSIS_CODE: I10", "hello"])
    assert scores.billable_rate == pytest.approx(2 / 3)
    assert per_code(scores) == [{"code": "I10", "n": 1, "correct": 0, "accuracy": 0.0},
                                {"code": "R42", "n": 2, "correct": 1, "accuracy": 0.5}]
    assert confusions(scores) == [{"reference": "R42", "predicted": "I10", "count": 1},
                                  {"reference": "I10", "predicted": "(no code)", "count": 1}]


def test_nearest_train_similarity_ignores_the_instruction_wording_and_other_codes():
    from helpers.evaluation import nearest_train_similarity

    wording = ["What is the ICD-10-CM code for this complaint: ", "Code this for the chart: ",
               "Convert the following complaint into a code: "]
    train = [{"instruction": w + text, "response": f"DIAGNOSIS_CODE: {code}"}
             for w in wording for text, code in [("my lower back aches", "M54.50"), ("sore throat all week", "J02.9"),
                                                  ("ringing in both ears", "H93.13")]]
    test = [{"instruction": wording[1] + "my lower back aches", "response": "DIAGNOSIS_CODE: M54.50"},
            {"instruction": wording[0] + "sore throat all week", "response": "DIAGNOSIS_CODE: M54.50"}]
    same, other_code = nearest_train_similarity(test, train)
    assert same == 1.0  # same complaint in another wording: the wording does not count
    assert other_code == 0.0  # its words exist in training, but under another code


def test_by_novelty_splits_exact_match_at_the_median_similarity():
    from helpers.evaluation import by_novelty

    rows = [{"instruction": str(i), "response": "DIAGNOSIS_CODE: J02.9"} for i in range(4)]
    answers = ["DIAGNOSIS_CODE: J02.9", "DIAGNOSIS_CODE: R05.9", "DIAGNOSIS_CODE: J02.9", "DIAGNOSIS_CODE: J02.9"]
    split = by_novelty(score(rows, answers), [0.1, 0.2, 0.6, 0.9])
    assert {k: v for k, v in split.items() if not k.endswith("_ci95")} == {
        "median_similarity": 0.6, "unlike_n": 2, "unlike_exact_match": 0.5, "like_n": 2, "like_exact_match": 1.0}
    assert split["unlike_ci95"][0] < 0.5 < split["unlike_ci95"][1] and split["like_ci95"][1] == 1.0


def test_interval95_is_wilsons_and_narrows_with_more_rows():
    from helpers.evaluation import interval95

    # Wilson's score interval by its formula: centre (k + z^2/2) / (n + z^2), half-width z/(n + z^2) * sqrt(...)
    k, n, z = 108, 129, 1.959964
    centre = (k + z * z / 2) / (n + z * z)
    half = z / (n + z * z) * (k * (n - k) / n + z * z / 4) ** 0.5
    low, high = interval95(k, n)
    assert low == pytest.approx(centre - half, abs=1e-4) and high == pytest.approx(centre + half, abs=1e-4)
    assert (0.76, 0.89) == (round(low, 2), round(high, 2))
    wide, narrow = interval95(8, 10), interval95(800, 1000)
    assert wide[1] - wide[0] > 5 * (narrow[1] - narrow[0])
    assert interval95(0, 5)[0] == 0.0 and interval95(5, 5)[1] == 1.0
    with pytest.raises(ValueError, match="no rows"):
        interval95(0, 0)


def test_a_scored_split_gives_the_interval_of_its_own_exact_match():
    from helpers.evaluation import interval95

    rows = [{"instruction": str(i), "response": f"DIAGNOSIS_CODE: {c}"} for i, c in enumerate(["R42", "R42", "I10"])]
    scores = score(rows, ["DIAGNOSIS_CODE: R42", "DIAGNOSIS_CODE: I10", "hello"])  # 1 of 3 right
    assert scores.interval95() == interval95(1, 3)
    low, high = scores.interval95()
    assert low < scores.exact_match < high


def test_by_novelty_keeps_both_halves_when_many_rows_tie():
    from helpers.evaluation import by_novelty

    rows = [{"instruction": str(i), "response": "DIAGNOSIS_CODE: J02.9"} for i in range(4)]
    split = by_novelty(score(rows, ["DIAGNOSIS_CODE: J02.9"] * 4), [0.0, 0.0, 0.0, 0.5])
    assert (split["unlike_n"], split["like_n"]) == (2, 2)


def test_adapter_answers_are_generated_once_per_adapter_rows_and_batch_size(base, tmp_path, monkeypatch):
    import helpers.evaluation as evaluation

    calls = []
    real = evaluation.generate_answers

    def spy(model, tokenizer, instructions, batch_size=16, **kwargs):
        calls.append(len(instructions))
        return real(model, tokenizer, instructions, batch_size, max_new_tokens=4, **kwargs)

    monkeypatch.setattr(evaluation, "generate_answers", spy)
    model, tokenizer = base
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    (adapter / "adapter_model.safetensors").write_bytes(b"weights v1")
    rows = [{"instruction": "My back aches.", "response": "DIAGNOSIS_CODE: M54.50", "code": "M54.50"},
            {"instruction": "I feel dizzy.", "response": "DIAGNOSIS_CODE: R42", "code": "R42"}]

    def run(rows=rows, batch_size=2):
        return evaluation.evaluate_adapter(model, tokenizer, rows, batch_size, adapter_dir=adapter,
                                           progress=False, store_dir=tmp_path / "answers")

    first = run()
    again = run()  # another chapter, same adapter and rows: nothing generated
    assert calls == [2]
    assert again.predictions == first.predictions and again.seconds_per_row == first.seconds_per_row
    run(batch_size=1)  # other padding
    run(rows=rows[:1])  # other rows
    (adapter / "adapter_model.safetensors").write_bytes(b"weights v2")  # retrained
    run()
    assert calls == [2, 2, 1, 2]
    for stored in (tmp_path / "answers").glob("*.json"):
        stored.write_text('{"answers": [')  # a write cut short
    run()
    assert calls == [2, 2, 1, 2, 2]
