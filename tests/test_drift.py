import torch

from helpers.drift import adapter_drift, general_prompts, mean_kl


def test_general_prompts_come_from_the_probe():
    prompts = general_prompts(limit=5)
    assert len(prompts) == 5 and all(p.startswith("Question: ") and "Choices: " in p for p in prompts)


def test_drift_is_zero_for_an_untouched_adapter_and_grows_when_it_changes(base):
    from peft import get_peft_model

    from helpers.lora import lora_config

    model, tokenizer = base
    prompts = general_prompts(limit=4)
    assert mean_kl(model, model, tokenizer, prompts) == 0.0
    peft_model = get_peft_model(model, lora_config(r=4, alpha=8))
    try:
        assert adapter_drift(peft_model, tokenizer, prompts) < 1e-9  # LoRA's B starts at zero
        with torch.no_grad():
            for name, param in peft_model.named_parameters():
                if "lora_B" in name:
                    param.normal_(0, 0.02)
        small = adapter_drift(peft_model, tokenizer, prompts)
        with torch.no_grad():
            for name, param in peft_model.named_parameters():
                if "lora_B" in name:
                    param.mul_(5)
        assert 0 < small < adapter_drift(peft_model, tokenizer, prompts)
    finally:
        peft_model.unload()
