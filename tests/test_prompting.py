from helpers.chat import SYSTEM_PROMPT
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
    assert messages[0]["content"] == SYSTEM_PROMPT and messages[2]["content"] == "DIAGNOSIS_CODE: M54.50"
    assert messages[-1] == {"role": "user", "content": "My ear hurts."}


def test_each_shot_costs_prompt_tokens(base):
    _, tokenizer = base
    zero, two = prompt_tokens(tokenizer, "My ear hurts.", []), prompt_tokens(tokenizer, "My ear hurts.", TRAIN[:2])
    assert zero > 10 and two > zero + 10


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
