"""How a dataset row becomes a conversation the model is trained and queried on.

Training and evaluation must format prompts identically, so both go through
these functions. We always pass a short system prompt: without one,
SmolLM2's chat template injects its own default ("You are a helpful AI
assistant named SmolLM ..."), which costs tokens on every row and says
nothing about the task.
"""
from __future__ import annotations

import re

SYSTEM_PROMPT = "You are a medical coding assistant. Reply with the ICD-10-CM code only."
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
