"""The memory pre-flight (helpers.preflight): its estimate against real training runs, and its verdict and errors."""
import pytest

from helpers.errors import CourseError
from helpers.preflight import (GIB, PUBLISHED, estimate, estimate_measured, free_memory, lora_parameters, measure,
                               meta_model, verdict)
from tests.conftest import run_module


@pytest.mark.parametrize("quantization", [None, "4bit"])
def test_the_estimate_is_within_a_quarter_of_a_measured_training_peak(quantization):
    # Chapter 4's own training path in a fresh process: LoRA on the top 10 blocks, 2 rows a step, 2 steps.
    measured = measure(quantization=quantization, batch_size=2, lora_top_layers=10, steps=2)
    assert [b for b, _, _ in measured["batches"]] == [2, 2] and all(n > 0 for _, _, n in measured["batches"])
    guess = estimate_measured(measured)
    assert abs(guess.total / measured["peak_rss_bytes"] - 1) <= 0.25, (guess.table(), measured)


@pytest.mark.parametrize("quantization", [None, "4bit"])
def test_the_weights_are_what_the_loaded_model_holds(quantization):
    """The meta-device sizes match the real model's tensors, 4-bit scales included."""
    from helpers.models import load_model

    model, _ = load_model(quantization=quantization)
    held = model.get_memory_footprint()
    if quantization:  # bitsandbytes keeps the NF4 scales beside the weight, outside parameters and buffers
        states = [p.quant_state for p in model.parameters() if hasattr(p, "quant_state")]
        held += sum(s.absmax.numel() + 4 * s.state2.absmax.numel() for s in states)
    guess = estimate("embedded", quantization=quantization, batch_size=1, seq_len=2)
    assert abs(guess.parts["weights"] - held) <= 0.001 * held


@pytest.mark.parametrize("targets, top_layers", [("all-linear", 10), ("attention", None), ("all-linear", None)])
def test_lora_parameters_are_counted_as_peft_counts_them(base, targets, top_layers):
    from peft import get_peft_model

    from helpers.lora import count_parameters, lora_config

    model, _ = base
    config = lora_config(16, 32, targets, top_layers=top_layers, num_layers=model.config.num_hidden_layers)
    peft_model = get_peft_model(model, config)
    try:
        counted = count_parameters(peft_model).trainable
    finally:
        peft_model.unload()
    assert lora_parameters(meta_model(model.config), 16, targets, top_layers) == counted


def test_the_parts_add_up_to_the_total_and_follow_the_trainable_count():
    guess = estimate("embedded", batch_size=4, seq_len=64, labelled_positions=60, lora_top_layers=10)
    assert guess.total == sum(guess.parts.values())
    assert guess.parts["LoRA parameters"] == guess.parts["gradients"] == 4 * guess.trainable_parameters
    assert guess.parts["optimizer state"] == 8 * guess.trainable_parameters  # AdamW: two float32 moments
    full = estimate("embedded", method="full", batch_size=4, seq_len=64)
    assert full.trainable_parameters == full.total_parameters == 134_515_008
    assert "LoRA parameters" not in full.parts and full.parts["gradients"] == 4 * full.total_parameters


def test_more_tokens_more_blocks_and_no_checkpointing_cost_more():
    small = estimate("embedded", batch_size=2, seq_len=64, lora_top_layers=10)
    assert estimate("embedded", batch_size=8, seq_len=64, lora_top_layers=10).total > small.total
    every = estimate("embedded", batch_size=2, seq_len=64)
    assert every.parts["activations"] > 2.5 * small.parts["activations"]  # 30 blocks keep activations, not 10
    saved = estimate("embedded", batch_size=2, seq_len=64, gradient_checkpointing=True)
    assert saved.parts["activations"] < every.parts["activations"] / 3
    answers_only = estimate("embedded", batch_size=2, seq_len=64, labelled_positions=28)
    assert answers_only.parts["logits (loss)"] < every.parts["logits (loss)"] / 4


def test_the_published_hub_architectures_give_their_parameter_counts():
    # SmolLM2-360M: 361,821,120 parameters; SmolLM2-1.7B: 1,711,376,384 (tied embeddings, counted once)
    counts = {model_id: estimate(model_id, device="cuda", dtype="bfloat16").total_parameters for model_id in PUBLISHED}
    assert counts == {"HuggingFaceTB/SmolLM2-360M-Instruct": 361_821_120,
                      "HuggingFaceTB/SmolLM2-1.7B-Instruct": 1_711_376_384}


def test_the_verdict_says_yes_tight_or_no_with_the_numbers():
    guess = estimate("embedded", quantization="4bit", dtype="float16", device="cuda", batch_size=16)
    need = guess.total / GIB
    assert guess.settings["device"] == "cuda" and "process baseline" not in guess.parts
    fits = verdict(guess, 16 * GIB)
    assert ": yes, ~" in fits and f"~{need:.1f} GiB" in fits and "LoRA on a 4-bit base" in fits and "batch 16" in fits
    assert ": tight, ~" in verdict(guess, int(guess.total * 1.05))
    short = verdict(guess, int(guess.total / 2))
    assert ": no, ~" in short and f"({need / 2:.1f} GiB short)" in short


def test_free_memory_on_cpu_is_positive_and_within_the_machine():
    import psutil

    assert 0 < free_memory("cpu") <= psutil.virtual_memory().total


@pytest.mark.parametrize("kwargs, message", [
    (dict(quantization="3bit"), "quantization must be one of None, 8bit, 4bit, not '3bit'"),
    (dict(method="full", quantization="4bit"), "full fine-tuning cannot train a quantized base"),
    (dict(batch_size=0), "batch_size must be a whole number of at least 1, not 0"),
    (dict(seq_len=10, batch_size=2, labelled_positions=30), "labelled_positions must be between 0 and"),
    (dict(lora_targets="mlp"), "lora_targets must be one of attention, all-linear"),
])
def test_bad_settings_are_refused_in_one_line(kwargs, message):
    with pytest.raises(CourseError, match=message.replace("(", r"\(")):
        estimate("embedded", **kwargs)


def test_the_cli_prints_the_parts_and_the_verdict():
    result = run_module("helpers.preflight", "--model", "embedded", "--quantization", "4bit", "--batch-size", "16",
                        "--seq-len", "160", "--free-gib", "15")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0].split() == ["part", "MiB", "share"]
    assert any(line.startswith("activations") for line in lines) and lines[-2].startswith("total")
    assert "LoRA on a 4-bit base (r32), float32, batch 16 x 160 tokens on cpu: fits 15.0 GiB free: yes" in lines[-1]


@pytest.mark.parametrize("args, message", [
    (["--quantization", "2bit"], "argument --quantization: invalid choice: '2bit'"),
    (["--batch-size", "many"], "argument --batch-size: invalid int value: 'many'"),
    (["--batch-size", "-4"], "batch_size must be a whole number of at least 1, not -4"),
    (["--lora-top-layers", "0"], "--lora-top-layers takes a whole number of at least 1 or 'all', not '0'"),
    (["--model", "no/such-model"], "no config for 'no/such-model'"),
    (["--device", "cuda"], "no CUDA device here"),
    (["--free-gib", "-1"], "--free-gib must be positive"),
])
def test_the_cli_turns_bad_input_into_one_error_line(args, message):
    import torch

    if "cuda" in args and torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    result = run_module("helpers.preflight", *args)
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr and not result.stdout
