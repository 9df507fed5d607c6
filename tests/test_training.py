import re
import json
from pathlib import Path

import pytest

from helpers.chat import extract_code
from helpers.config import get_profile
from helpers.lora import count_parameters, lora_config, lora_modules
from helpers.training import make_trainer

ROWS = [
    {"instruction": "My lower back has been aching since yesterday.", "response": "DIAGNOSIS_CODE: M54.50"},
    {"instruction": "Sore throat, hurts to swallow.", "response": "DIAGNOSIS_CODE: J02.9"},
]


def rows():
    from helpers.chat import prompt_completion

    return [{**r, **prompt_completion(r)} for r in ROWS]


def test_loss_falls_on_the_completion_and_eos_only(base, tmp_path):
    model, tokenizer = base
    trainer = make_trainer(model, tokenizer, get_profile("ci"), rows(), rows(), output_dir=tmp_path,
                           peft_config=lora_config(r=4, alpha=8))
    try:
        example = trainer.data_collator([trainer.train_dataset[0]])
        ids, labels = example["input_ids"][0], example["labels"][0]
        assert tokenizer.decode(ids[labels != -100]).strip() == "DIAGNOSIS_CODE: M54.50<|im_end|>"
        assert "aching since yesterday" in tokenizer.decode(ids)
    finally:
        trainer.model.unload()


def test_scoring_only_the_labelled_positions_keeps_loss_and_gradients(base, tmp_path, monkeypatch):
    import torch
    import trl.trainer.utils as trl_utils

    model, tokenizer = base
    trainer = make_trainer(model, tokenizer, get_profile("ci"), rows(), rows(), output_dir=tmp_path,
                           peft_config=lora_config(r=4, alpha=8, dropout=0.0))  # no dropout: two identical passes
    try:
        assert trl_utils._use_triton(torch.device("cpu"))  # the compact path is on
        batch = trainer._prepare_inputs(trainer.data_collator([trainer.train_dataset[i] for i in range(2)]))
        lora = [p for p in trainer.model.parameters() if p.requires_grad]

        def loss_and_grads():
            trainer.model.zero_grad()
            loss = trainer.compute_loss(trainer.model, dict(batch))
            loss.backward()
            return loss.item(), [p.grad.clone() for p in lora]

        compact_loss, compact_grads = loss_and_grads()
        monkeypatch.setattr(trl_utils, "_use_triton", trl_utils._use_triton.original)
        full_loss, full_grads = loss_and_grads()
        assert compact_loss == pytest.approx(full_loss, rel=1e-5)
        assert any(g.abs().sum() > 0 for g in full_grads)
        for compact, full in zip(compact_grads, full_grads):
            torch.testing.assert_close(compact, full, rtol=1e-4, atol=1e-6)
    finally:
        trainer.model.unload()


def test_top_layers_restricts_adapters_to_the_last_blocks(base):
    from peft import get_peft_model

    model, _ = base
    peft_model = get_peft_model(model, lora_config(r=4, alpha=8, targets="all-linear", top_layers=2, num_layers=30))
    try:
        blocks = {name.split(".")[1] for name in lora_modules(peft_model)}
        assert blocks == {"28", "29"}
        assert 0 < count_parameters(peft_model).percent < 1
    finally:
        peft_model.unload()


def test_sft_config_follows_the_profile(tmp_path):
    from helpers.training import curated_max_length, sft_config

    profile = get_profile("ci")
    config = sft_config(profile, tmp_path)
    assert config.num_train_epochs == profile.epochs
    assert profile.max_length is None and config.max_length == curated_max_length()  # chapter 1's measured limit
    assert config.learning_rate == profile.learning_rate
    assert config.lr_scheduler_type == profile.lr_schedule
    assert not config.bf16 and config.use_cpu
    assert config.activation_checkpointing is False


def test_an_adapter_records_the_profile_it_was_trained_in(tmp_path):
    from helpers.training import PROFILE_STAMP, adapter_stamp

    assert adapter_stamp(tmp_path).get("profile") is None
    (tmp_path / PROFILE_STAMP).write_text('{"profile": "ci"}')
    assert adapter_stamp(tmp_path).get("profile") == "ci"


def test_an_adapter_trained_on_splits_since_curated_again_is_retrained(tmp_path, monkeypatch, capsys):
    import helpers.training as training

    trained = []
    monkeypatch.setattr(training, "train_adapter", lambda profile, out_dir: trained.append(out_dir))
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    current = training.splits_fingerprint()  # outputs/data, curated by ensure_curated if missing
    assert current is not None
    for splits, retrained in ((current, False), (None, False), ("0" * 16, True)):  # None: an adapter from before stamps
        stamp = {"profile": "ci", **({"splits": splits} if splits else {})}
        (adapter / training.PROFILE_STAMP).write_text(json.dumps(stamp))
        training.ensure_adapter(get_profile("ci"), adapter)
        assert bool(trained) is retrained, stamp
    out = capsys.readouterr().out
    assert trained == [adapter] and "curated again: training one now with chapter 4's recipe" in out
    # the notice says what the training will cost before it starts
    assert re.search(r"\d+ steps over \d+ rows: about 2 min", out)


def test_a_missing_adapter_is_trained_after_a_notice(tmp_path, monkeypatch, capsys):
    import helpers.training as training

    trained = []
    monkeypatch.setattr(training, "train_adapter", lambda profile, out_dir: trained.append(out_dir))
    training.ensure_adapter(get_profile("ci"), tmp_path / "adapter")
    assert trained == [tmp_path / "adapter"]
    assert "No adapter from chapter 4 in" in capsys.readouterr().out


def test_profile_code_subset_applies_to_the_uncurated_set_too():
    from helpers.training import load_split

    profile = get_profile("ci")
    train = load_split("train", profile)
    uncurated = load_split("train_uncurated", profile)
    codes = {r["code"] for r in train}
    assert len(codes) == profile.codes
    # rows are kept by the code they were meant to carry, so stale answers (M54.5 for M54.50) stay in the uncurated set
    assert {r["code"] for r in uncurated} <= codes and len(uncurated) > len(train)
    assert {extract_code(r["response"]) for r in uncurated} - codes


def test_the_adapter_settings_come_from_the_profile():
    from types import SimpleNamespace

    from helpers.training import peft_config_for

    for name in ("ci", "cpu", "gpu"):
        profile = get_profile(name)
        config = peft_config_for(profile, SimpleNamespace(config=SimpleNamespace(num_hidden_layers=30)))
        assert (config.r, config.lora_alpha, config.lora_dropout) == (
            profile.lora_r, profile.lora_alpha, profile.lora_dropout)
        top = profile.lora_top_layers
        assert config.layers_to_transform == (list(range(30 - top, 30)) if top else None)
    # both kinds are covered: some blocks (the CPU speed lever) and every block
    assert get_profile("ci").lora_top_layers == 10
    assert get_profile("cpu").lora_top_layers is None and get_profile("gpu").lora_top_layers is None


def test_fp16_training_keeps_the_trained_weights_in_float32_and_the_frozen_ones_as_they_are():
    import torch

    from helpers.training import trainable_in_float32

    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 4)).to(torch.bfloat16)
    model[0].requires_grad_(False)  # the frozen base
    trainable_in_float32(model)
    assert {p.dtype for p in model[1].parameters()} == {torch.float32}
    assert {p.dtype for p in model[0].parameters()} == {torch.bfloat16}


@pytest.mark.parametrize("bf16_speedup", [0.6, 4.0])
def test_a_qlora_adapter_is_trained_in_float32_on_cpu_with_or_without_bf16_autocast(tmp_path, monkeypatch,
                                                                                     bf16_speedup):
    import dataclasses
    import json
    import math

    import torch

    import helpers.speed
    from helpers.chat import prompt_completion
    from helpers.config import get_profile
    from helpers.lora import lora_config
    from helpers.paths import DATA
    from helpers.training import make_trainer, model_for_training

    monkeypatch.setattr(helpers.speed, "bf16_speedup", lambda: bf16_speedup)
    profile = dataclasses.replace(get_profile("ci"), quantize_base="4bit", bf16_autocast="auto")
    model, tokenizer = model_for_training(profile)
    rows = [{**r, **prompt_completion(r)} for r in json.loads((DATA / "examples" / "seed_format.json").read_text())]
    trainer = make_trainer(model, tokenizer, profile, rows, rows[:2], output_dir=tmp_path, max_length=256,
                           max_steps=1, eval_strategy="no", save_strategy="no",
                           peft_config=lora_config(r=4, alpha=8, top_layers=2, num_layers=model.config.num_hidden_layers))
    assert trainer.args.bf16 is (bf16_speedup >= 1.5)
    # under bfloat16 autocast, attention as plain matrix products (faster than the fused CPU kernel there)
    assert model.config._attn_implementation == ("eager" if bf16_speedup >= 1.5 else "sdpa")
    # TRL stores a quantized base's adapter in bfloat16 (the QLoRA paper's GPU setting); AdamW's small steps would
    # be rounded away. Autocast computes in bfloat16 but keeps the weights it trains in float32.
    assert {p.dtype for p in trainer.model.parameters() if p.requires_grad} == {torch.float32}
    assert math.isfinite(trainer.train().training_loss)
    assert {p.dtype for p in trainer.model.parameters() if p.requires_grad} == {torch.float32}


def test_the_general_probe_runs_on_the_float32_forward_of_a_model_under_autocast():
    from types import SimpleNamespace

    from helpers.training import _float32_forward

    def wrapped():
        return "bfloat16"

    model = SimpleNamespace(forward=wrapped, _original_forward=lambda: "float32")  # as Accelerate leaves it
    with _float32_forward(model):
        assert model.forward() == "float32"
    assert model.forward is wrapped
    plain = SimpleNamespace(forward=lambda: "float32")  # no mixed precision: nothing to swap
    with _float32_forward(plain):
        assert plain.forward() == "float32"


def test_bf16_autocast_only_on_a_cpu_that_multiplies_bf16_faster_and_only_where_the_profile_allows(
        tmp_path, monkeypatch):
    import helpers.speed
    from helpers.training import bf16_autocast, sft_config

    for speedup, expected in ((4.5, True), (1.2, False)):
        monkeypatch.setattr(helpers.speed, "bf16_speedup", lambda: speedup)
        assert bf16_autocast(get_profile("cpu")) is expected
        config = sft_config(get_profile("cpu"), tmp_path)
        assert config.bf16 is expected and not config.fp16
        # weights stay float32: autocast changes how products are computed, not what is stored
        assert get_profile("cpu").dtype == "float32"
        assert bf16_autocast(get_profile("ci")) is False and sft_config(get_profile("ci"), tmp_path).bf16 is False
        # GPU profiles follow their dtype, whatever the CPU beside the GPU does
        assert bf16_autocast(get_profile("gpu")) is False and bf16_autocast(get_profile("colab-t4")) is False


def test_a_4bit_base_being_trained_keeps_its_layout_through_a_measurement():
    import dataclasses

    import torch

    from helpers.training import keep_4bit_layout_for_training, model_for_training

    model, tokenizer = model_for_training(dataclasses.replace(get_profile("ci"), quantize_base="4bit"))
    layers = [m for m in model.modules() if hasattr(m, "support_avx512bf16_for_cpu")]
    assert layers and not any(m.support_avx512bf16_for_cpu for m in layers)
    # As on a CPU with AVX-512 BF16, whatever this machine has: the switch is found and turned off.
    for m in layers:
        m.support_avx512bf16_for_cpu = True
    assert keep_4bit_layout_for_training(model) == len(layers)
    # A measurement mid-training: eval mode, no gradients (what the probe and the val pass do).
    model.eval()
    with torch.no_grad():
        model(**tokenizer("My ear hurts.", return_tensors="pt"))
    model.train()
    assert not any(getattr(m.weight.quant_state, "packing_format_for_cpu", False) for m in layers)


def test_resuming_takes_the_newest_complete_checkpoint_not_the_highest_number(tmp_path):
    from helpers.training import complete_checkpoint, last_checkpoint

    def checkpoint(step: int, *skip: str, state: str = '{"global_step": 0}') -> Path:
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        for name in ("adapter_model.safetensors", "optimizer.pt", "scheduler.pt", "rng_state.pth"):
            if name not in skip:
                (folder / name).write_bytes(b"x")
        if "trainer_state.json" not in skip:
            (folder / "trainer_state.json").write_text(state)
        return folder

    assert last_checkpoint(tmp_path / "none") is None and last_checkpoint(tmp_path) is None
    good = checkpoint(2)
    assert complete_checkpoint(good) and last_checkpoint(tmp_path) == str(good)
    # killed while saving, at each file in the trainer's order: every one is passed over
    for step, skip in ((4, ("trainer_state.json",)), (6, ("rng_state.pth", "trainer_state.json")),
                       (8, ("scheduler.pt", "rng_state.pth", "trainer_state.json")),
                       (10, ("optimizer.pt", "scheduler.pt", "rng_state.pth", "trainer_state.json"))):
        assert not complete_checkpoint(checkpoint(step, *skip))
    assert not complete_checkpoint(checkpoint(12, state='{"global_st'))  # its state cut short
    assert not complete_checkpoint(checkpoint(14, "adapter_model.safetensors"))
    (tmp_path / "checkpoint-x").mkdir()
    assert last_checkpoint(tmp_path) == str(good)
    newer = checkpoint(100)  # numbers, not names: 100 comes after 14
    assert last_checkpoint(tmp_path) == str(newer)
