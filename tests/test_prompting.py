from helpers.chat import SYSTEM_PROMPT, TASK_PROMPT
from helpers.prompting import few_shot_messages, pick_shots, prompt_tokens, run_prompting

TRAIN = [
    {"instruction": "My back aches.", "response": "DIAGNOSIS_CODE: M54.50", "code": "M54.50"},
    {"instruction": "Lower back pain again.", "response": "DIAGNOSIS_CODE: M54.50", "code": "M54.50"},
    {"instruction": "I feel dizzy.", "response": "DIAGNOSIS_CODE: R42", "code": "R42"},
    {"instruction": "Sore throat.", "response": "DIAGNOSIS_CODE: J02.9", "code": "J02.9"},
]


def test_shots_cover_different_codes_and_become_earlier_turns():
    shots = pick_shots(TRAIN, 2)
    assert [s["code"] for s in shots] == ["M54.50", "R42"]
    messages = few_shot_messages("My ear hurts.", shots)
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert messages[0]["content"] == TASK_PROMPT and messages[2]["content"] == "DIAGNOSIS_CODE: M54.50"
    assert messages[-1] == {"role": "user", "content": "My ear hurts."}


def test_each_shot_costs_prompt_tokens(base):
    _, tokenizer = base
    zero, two = prompt_tokens(tokenizer, "My ear hurts.", []), prompt_tokens(tokenizer, "My ear hurts.", TRAIN[:2])
    assert zero > 10 and two > zero + 10
    # The fine-tune's empty system turn is what its requests save over a zero-shot prompt.
    assert prompt_tokens(tokenizer, "My ear hurts.", [], SYSTEM_PROMPT) + 15 < zero


def test_run_prompting_reports_score_tokens_and_time(base):
    model, tokenizer = base
    result = run_prompting(model, tokenizer, TRAIN[2:], pick_shots(TRAIN, 2))
    assert result["n"] == 2 and result["shots"] == 2 and 0 <= result["exact_match"] <= 1
    assert result["prompt_tokens_per_request"] > 30 and result["seconds_per_request"] > 0
    assert result["latency_seconds"] > 0


def test_latency_is_timed_on_single_requests(base, monkeypatch):
    import helpers.evaluation as evaluation

    batches = []
    real = evaluation.generate_answers

    def spy(model, tokenizer, instructions, batch_size=16, **kwargs):
        batches.append((len(instructions), batch_size))
        return real(model, tokenizer, instructions, batch_size, **kwargs)

    monkeypatch.setattr(evaluation, "generate_answers", spy)
    model, tokenizer = base
    run_prompting(model, tokenizer, TRAIN, [], batch_size=4, latency_rows=2)
    assert batches == [(4, 4), (1, 1), (1, 1)]


def test_zero_shot_reuses_the_answers_evaluate_rows_already_has(base, monkeypatch):
    import pytest

    import helpers.evaluation as evaluation

    model, tokenizer = base
    answered = evaluation.evaluate_rows(model, tokenizer, TRAIN, batch_size=4, progress=False)
    batches = []
    real = evaluation.generate_answers

    def spy(model, tokenizer, instructions, batch_size=16, **kwargs):
        batches.append(len(instructions))
        return real(model, tokenizer, instructions, batch_size, **kwargs)

    monkeypatch.setattr(evaluation, "generate_answers", spy)
    result = run_prompting(model, tokenizer, TRAIN, [], batch_size=4, latency_rows=1, answered=answered,
                           system=SYSTEM_PROMPT)
    assert batches == [1]  # only the single-request latency
    assert result["exact_match"] == round(answered.exact_match, 4)
    assert result["seconds_per_request"] == round(answered.seconds_per_row, 4)
    with pytest.raises(ValueError, match="zero-shot"):
        run_prompting(model, tokenizer, TRAIN, TRAIN[:1], answered=answered, system=SYSTEM_PROMPT)
    with pytest.raises(ValueError, match="other rows"):
        run_prompting(model, tokenizer, TRAIN[:2], [], answered=answered, system=SYSTEM_PROMPT)
    with pytest.raises(ValueError, match="own system turn"):  # the task prompt asks another question
        run_prompting(model, tokenizer, TRAIN, [], answered=answered)


def test_the_shared_examples_computed_once_give_the_answers_of_the_full_prompts(base):
    from helpers.evaluation import generate_answers
    from helpers.prompting import generate_with_shared_prefix

    model, tokenizer = base
    shots = pick_shots(TRAIN, 2)
    # Rows of different lengths in one batch: the padding sits between the shared examples and each row's turn.
    instructions = ["My ear hurts.", "Sore throat and a fever since the weekend, and now my glands are up.",
                    "I feel dizzy.", "Rash.", "My knee gave way on the stairs."]  # a short last batch too
    full = generate_answers(model, tokenizer, instructions, 2, max_new_tokens=8, progress=False,
                            messages=lambda i: few_shot_messages(i, shots))
    cached = generate_with_shared_prefix(model, tokenizer, instructions, shots, batch_size=2, max_new_tokens=8)
    assert cached == full and all(cached)
