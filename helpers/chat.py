"""How a dataset row becomes a conversation the model is trained and queried on.

Training and evaluation must format prompts identically, so both go through
these functions. The fine-tuned model gets an *empty* system turn. Without a
system turn, SmolLM2's chat template injects its own default ("You are a
helpful AI assistant named SmolLM ..."), which costs tokens on every row and
says nothing about the task; an empty one stops that, and the task itself is
what fine-tuning teaches, so it need not be spelt out on every request. The
one-line task prompt (:data:`TASK_PROMPT`) is for prompting a model that was
not trained on the task (chapter 5). Dropping it from the fine-tune's rows
takes 20 of their 83 tokens: about a quarter of every training step and
every request served.
"""
from __future__ import annotations

import re

#: The system turn the fine-tuned model is trained and queried with.
SYSTEM_PROMPT = ""
#: What prompting without fine-tuning has to say about the task (chapter 5's base-model set-ups).
TASK_PROMPT = "You are a medical coding assistant. Reply with the ICD-10-CM code only."
RESPONSE_PREFIX = "DIAGNOSIS_CODE:"
CODE_PATTERN = re.compile(r"DIAGNOSIS_CODE:\s*([A-Z][0-9][0-9A-Z](?:\.[0-9A-Z]{1,4})?)")


def prompt_messages(instruction: str, system: str = SYSTEM_PROMPT) -> list[dict]:
    return [{"role": "system", "content": system}, {"role": "user", "content": instruction}]


def prompt_completion(row: dict) -> dict:
    """TRL's conversational prompt/completion form: loss falls on the completion only."""
    return {
        "prompt": prompt_messages(row["instruction"]),
        "completion": [{"role": "assistant", "content": row["response"]}],
    }


def extract_code(text: str) -> str | None:
    """The ICD-10-CM code in a model answer, or None when the format is not followed."""
    match = CODE_PATTERN.search(text or "")
    return match.group(1) if match else None
