"""Chapter 7's merge, release folder and model card (helpers.merging) on the real embedded model."""
import json

import pytest
import torch

from helpers.errors import CourseError
from helpers.merging import (CARD_SECTIONS, NOT_CLINICAL, agreement, check_full_precision, check_release,
                             max_logit_difference, mmlu_change, model_card, require_identical, save_merged,
                             write_card)
from tests.conftest import save_random_adapter

TEST = {"n": 40, "exact_match": 0.85, "format_compliance": 1.0, "billable_rate": 0.975, "interval95": [0.71, 0.93]}
RECIPE = {"profile": "ci", "lora_r": 16, "lora_alpha": 32}
COMPLAINTS = ["My lower back has been aching since yesterday.", "I keep coughing at night and it won't stop.",
              "Burning when I pee, and I need to go all the time.", "My feet itch between the toes."]


@pytest.fixture(scope="module")
def adapter_and_merged(tmp_path_factory, base):
    """A LoRA adapter with a small random update, saved with its card, and the model merged from it, saved."""
    from helpers.config import EMBEDDED_MODEL
    from helpers.models import load_trained

    root = tmp_path_factory.mktemp("merging")
    save_random_adapter(base, root / "adapter")
    write_card(root / "adapter", model_card(EMBEDDED_MODEL, RECIPE, TEST, adapter=True))
    merged, merged_tokenizer = load_trained(root / "adapter", merge=True)
    save_merged(merged, merged_tokenizer, root / "merged", card=model_card(EMBEDDED_MODEL, RECIPE, TEST))
    return root / "adapter", root / "merged"


def test_the_merged_folder_is_a_release_a_plain_transformers_model_loads(adapter_and_merged):
    from transformers import AutoModelForCausalLM

    _, merged = adapter_and_merged
    found = check_release(merged)
    assert found["weights"] == ["model.safetensors"] and found["chat_template"]
    assert found["eos_token"] != found["pad_token"]
    assert found["card_sections"][: len(CARD_SECTIONS)] == list(CARD_SECTIONS)
    assert found["base_model"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert not (merged / "adapter_config.json").exists()
    model = AutoModelForCausalLM.from_pretrained(merged)  # no peft
    assert model.generation_config.pad_token_id not in (None, model.generation_config.eos_token_id)


def test_the_cards_carry_scores_with_interval_limits_and_mmlu(adapter_and_merged):
    adapter, merged = adapter_and_merged
    text = (merged / "README.md").read_text()
    assert NOT_CLINICAL in text and "certified medical coder" in text
    assert "85.0 %" in text and "71.0 % to 93.0 %" in text and "n/a" not in text
    assert "Not measured" in text  # no MMLU figures given: the card says so rather than leave the section empty
    assert "library_name: peft" in (adapter / "README.md").read_text()
    assert check_release(adapter)["card_sections"][: len(CARD_SECTIONS)] == list(CARD_SECTIONS)
    results = {"05_evaluation": {"general": {"mmlu_medical": {
        "base": {"n": 100, "accuracy": 0.30}, "fine-tuned": {"n": 100, "accuracy": 0.28},
        "paired": {"p_value": 0.5}}}}}
    card = str(model_card("embedded:SmolLM2-135M-Instruct", RECIPE, TEST, mmlu=mmlu_change(results)))
    assert "| mmlu_medical | 100 | 30.0 % | 28.0 % | 0.5 |" in card
    assert mmlu_change({}) is None


@pytest.mark.parametrize("breakage, message", [
    (lambda d: (d / "README.md").unlink(), "no model card"),
    (lambda d: (d / "README.md").write_text((d / "README.md").read_text().replace("## Limits", "## Notes")),
     "lacks the section(s) ['Limits']"),
    (lambda d: (d / "README.md").write_text((d / "README.md").read_text().replace(NOT_CLINICAL, "Use freely.")),
     "not for clinical use"),
    (lambda d: (d / "pytorch_model.bin").write_bytes(b"x"), "pickled files"),
    (lambda d: (d / "generation_config.json").write_text(json.dumps(
        {**json.loads((d / "generation_config.json").read_text()), "pad_token_id": 2})), "differ from EOS"),
])
def test_a_broken_release_is_named(adapter_and_merged, tmp_path, breakage, message):
    import shutil

    copy = tmp_path / "merged"
    shutil.copytree(adapter_and_merged[1], copy)
    breakage(copy)
    with pytest.raises(CourseError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        check_release(copy)


def test_save_merged_refuses_pad_equal_to_eos(base, tmp_path):
    import copy

    model, tokenizer = base
    bad = copy.deepcopy(tokenizer)
    bad.pad_token = bad.eos_token
    with pytest.raises(CourseError, match="pad token is EOS"):
        save_merged(model, bad, tmp_path / "merged")
    assert not (tmp_path / "merged").exists()


def test_a_merge_into_4bit_weights_is_refused(tmp_path):
    from helpers.models import load_model

    model, tokenizer = load_model(quantization="4bit")
    with pytest.raises(CourseError, match="full-precision base"):
        check_full_precision(model)
    with pytest.raises(CourseError, match="never into 4- or 8-bit"):
        save_merged(model, tokenizer, tmp_path / "merged")
    assert not (tmp_path / "merged").exists()


def test_the_merge_keeps_every_answer_and_a_corrupted_merge_is_caught(adapter_and_merged):
    from helpers.evaluation import generate_answers
    from helpers.models import load_trained

    adapter_dir, merged_dir = adapter_and_merged
    adapter, tokenizer = load_trained(adapter_dir)
    merged, _ = load_trained(merged_dir)  # reloaded from disk
    expected = generate_answers(adapter, tokenizer, COMPLAINTS, batch_size=4, progress=False)
    answers = generate_answers(merged, tokenizer, COMPLAINTS, batch_size=4, progress=False)
    assert require_identical(expected, answers, "merge") == {"n": 4, "identical": 4, "changed_rows": []}
    assert max_logit_difference(adapter, merged, tokenizer, COMPLAINTS) < 1e-3
    with torch.no_grad():  # a merge that went wrong: one layer's update applied with the wrong scale
        layer = merged.model.layers[-1].self_attn.o_proj.weight
        layer.add_(torch.randn_like(layer) * layer.std() * 4)
    assert max_logit_difference(adapter, merged, tokenizer, COMPLAINTS) > 1.0
    corrupted = generate_answers(merged, tokenizer, COMPLAINTS, batch_size=4, progress=False)
    assert agreement(expected, corrupted)["identical"] < 4
    with pytest.raises(CourseError, match="answers changed"):
        require_identical(expected, corrupted, "merge")


def test_agreement_refuses_answers_to_different_rows():
    with pytest.raises(CourseError, match="same rows"):
        agreement(["a"], ["a", "b"])
