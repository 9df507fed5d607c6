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


def test_every_prompt_carries_the_short_system_prompt():
    messages = prompt_messages("my ear hurts")
    assert messages[0] == {"role": "system", "content": SYSTEM_PROMPT}
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
