"""Chapter 4: supervised fine-tuning with TRL's SFTTrainer.

The curated splits are in TRL's conversational prompt/completion form, so the
trainer computes the loss on the completion ("DIAGNOSIS_CODE: ...") only and
not on the prompt it will always be given.
"""
from __future__ import annotations

import contextlib
import functools
import json
import random
from pathlib import Path

import numpy as np
import torch
from transformers import TrainerCallback

from helpers.atomic import atomic_dir, recover
from helpers.config import Profile, get_profile
from helpers.jsonl import read_jsonl
from helpers.paths import ADAPTER_DIR, OUTPUTS, SPLITS_DIR, show


def seed_everything(seed: int = 0) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


#: Codes the course's fine-tune never trains on, standing for knowledge that arrives after training (chapter 6):
#: COVID-19 and unspecified depression, codes ICD-10-CM added in 2020 and 2021, and four whose lay wording is
#: distinctive (pink eye, athlete's foot, ingrown nail, nosebleed), standing for labels a team adds later.
FRESH_CODES = ("U07.1", "F32.A", "H10.9", "B35.3", "L60.0", "R04.0")


def ensure_curated(splits_dir: Path = SPLITS_DIR) -> Path:
    """Chapter 1's output directory, curating ``data/`` first when a notebook runs on its own.

    The course's splits are its raw file plus the train-only second batch.
    Splits curated from the course's raw file without that batch, or under an
    older prompt format, dataset or set of rules (see
    :func:`helpers.curate.fingerprint`), are curated again. Splits a team
    curated from its own files, and those a recipe run curated with its own
    settings (``helpers.train``, which leaves ``RECIPE_CURATION`` beside
    them), are used as they are.

    Only a complete set counts: its ``report.json`` (written last, see
    :func:`helpers.curate.write_outputs`) and every file it vouches for, each
    with the rows it reports. A folder without a report (a curation cut
    short) is curated anew; a team's incomplete set is refused.
    """
    from helpers.curate import curate
    from helpers.errors import CourseError
    from helpers.paths import BATCH2_DATASET, RAW_DATASET, RECIPE_CURATION

    splits_dir = Path(splits_dir)
    settings = {}
    report = _read_report(splits_dir)
    if report is not None:
        missing = incomplete(splits_dir, report)
        if (splits_dir / RECIPE_CURATION).is_file() and not missing:
            return splits_dir  # a recipe's own curation (helpers.train): its settings are the recipe's, not the course's
        ours = report.get("inputs") == [show(RAW_DATASET)] and \
            report.get("train_only_inputs", []) in ([], [show(BATCH2_DATASET)])
        if not ours and missing:
            raise CourseError(f"{show(splits_dir)}: the curated set is incomplete ({missing}); "
                              "run python -m helpers.curate again")
        if not ours:
            return splits_dir
        current = report.get("fingerprint") == course_fingerprint(get_profile().model_id)
        if current and not missing:
            return splits_dir
        settings = report.get("settings", {})  # a seed or max_length given to chapter 1 stays
        settings["held_out"] = FRESH_CODES
        why = f"incomplete ({missing})" if current else "from an older dataset, prompt format or curation"
        print(f"The splits in {show(splits_dir)} are {why}: curating again ...")
    settings.setdefault("held_out", FRESH_CODES)
    curate([RAW_DATASET], splits_dir, train_only=[BATCH2_DATASET], **settings)
    return splits_dir


@functools.lru_cache(maxsize=4)
def course_fingerprint(model_id: str) -> str:
    """The fingerprint the course's splits have when curated for ``model_id`` (computed once per process)."""
    from helpers.curate import fingerprint
    from helpers.models import load_tokenizer
    from helpers.paths import BATCH2_DATASET, RAW_DATASET

    return fingerprint([RAW_DATASET], [BATCH2_DATASET], load_tokenizer(model_id), FRESH_CODES)


def _read_report(splits_dir: Path) -> dict | None:
    """A curation's report, or None where there is none (or none that parses: never written by ``helpers.curate``)."""
    try:
        report = json.loads((splits_dir / "report.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return report if isinstance(report, dict) else None


def incomplete(splits_dir: Path, report: dict) -> str | None:
    """What keeps ``splits_dir`` from being the set its ``report`` describes (a file missing, rows missing), or None."""
    from helpers.curate import OUTPUT_FILES

    rows = {**{f"{name}.jsonl": count for name, count in report.get("splits", {}).items()},
            "rejects.jsonl": report.get("rejected"), "train_uncurated.jsonl": report.get("uncurated_train_rows")}
    for name in OUTPUT_FILES:
        path = Path(splits_dir) / name
        if not path.is_file():
            return f"{name} is missing"
        lines = path.read_bytes().count(b"\n")  # one row a line, as helpers.jsonl writes them
        if rows.get(name) is not None and lines != rows[name]:
            return f"{name} has {lines} rows, the report says {rows[name]}"
    return None


def curated_max_length(splits_dir: Path = SPLITS_DIR) -> int:
    """The token limit chapter 1 chose from the measured length distribution."""
    report = json.loads((ensure_curated(splits_dir) / "report.json").read_text())
    return report["tokens"]["max_length"]


def load_split(name: str, profile: Profile | None = None, splits_dir: Path = SPLITS_DIR) -> list[dict]:
    """Rows of a curated split, as the profile uses them.

    ``train``, ``val``, ``test``; ``train_uncurated`` (the raw rows before the rules, each with the code its
    answer meant); ``fresh`` and ``fresh_train`` (the held-out codes' rows, never cut to a profile's codes).
    """
    path = ensure_curated(splits_dir) / f"{name}.jsonl"
    rows = read_jsonl(path)
    if profile is not None and profile.codes and not name.startswith("fresh"):
        codes = sorted({r["code"] for r in read_jsonl(Path(splits_dir) / "test.jsonl")})
        keep = set(select_codes(codes, profile.codes))
        rows = [r for r in rows if r.get("code") in keep]
    if profile is not None and name == "test" and profile.test_limit:
        rows = rows[: profile.test_limit]
    return rows


def select_codes(codes: list[str], n: int) -> list[str]:
    """``n`` codes spread evenly over the sorted list (so every ICD chapter letter range is sampled)."""
    step = max(1, len(codes) // n)
    return codes[::step][:n]


def to_dataset(rows: list[dict]):
    """A ``datasets.Dataset`` with only the columns TRL trains on."""
    from datasets import Dataset

    return Dataset.from_list([{"prompt": r["prompt"], "completion": r["completion"]} for r in rows])


def bf16_autocast(profile: Profile) -> bool:
    """Whether a CPU run computes its matrix products in bfloat16 (see ``Profile.bf16_autocast``).

    On a CPU with bfloat16 instructions a training step takes about half the
    time (2.4 s -> 1.2 s on the 2-core AVX512-BF16 machine, 2026-11-30); on one
    without, PyTorch emulates bfloat16 and autocast would slow training down.
    """
    if profile.device != "cpu" or profile.bf16_autocast == "off":
        return False
    if profile.bf16_autocast != "auto":
        raise ValueError(f"bf16_autocast is 'auto' or 'off', not {profile.bf16_autocast!r}")
    from helpers.speed import bf16_speedup

    return bf16_speedup() >= 1.5


def precision_summary(profile: Profile) -> str:
    """How a run of this profile computes, in one line (on CPU it depends on the machine, so notebooks print it)."""
    if profile.device != "cpu":
        return f"{profile.dtype} mixed precision on the GPU"
    if profile.bf16_autocast == "off":
        return f"float32 throughout (the {profile.name} profile never computes in bfloat16)"
    from helpers.speed import bf16_speedup

    if bf16_autocast(profile):
        return (f"float32 weights, matrix products in bfloat16 (autocast): this CPU multiplies "
                f"{bf16_speedup():.1f}x faster in bfloat16")
    return f"float32 throughout: this CPU multiplies {bf16_speedup():.1f}x as fast in bfloat16, too little to pay"


#: optimizer steps at a rising rate before the schedule proper: Adam's running averages settle first
WARMUP_STEPS = 10


def sft_config(profile: Profile, output_dir: Path, **overrides):
    from trl import SFTConfig

    on_gpu = profile.device == "cuda"
    args = dict(
        output_dir=str(output_dir),
        num_train_epochs=profile.epochs,
        per_device_train_batch_size=profile.batch_size,
        # The val-loss pass in batches of the training size: 32 rows of mixed lengths carry more padding
        # (128 val rows: 17 s at 8, 24-26 s at 32 on the 2-core machine, 2026-11-30).
        per_device_eval_batch_size=profile.batch_size,
        gradient_accumulation_steps=profile.grad_accum,
        learning_rate=profile.learning_rate,
        # After a short warm-up, "cosine" decays the rate to zero at the last epoch: large
        # steps while the codes are being told apart, small ones to settle on them.
        lr_scheduler_type=profile.lr_schedule,
        warmup_steps=WARMUP_STEPS,
        max_length=overrides.pop("max_length", None) or profile.max_length or curated_max_length(),
        logging_steps=1,  # a loss point per step for the curve
        eval_strategy="epoch",
        save_strategy="epoch",
        save_total_limit=2,
        report_to="none",
        seed=0,
        # Autocast: bfloat16 products, float32 weights and optimizer (bf16_autocast: CPUs with bfloat16 instructions).
        bf16=profile.dtype == "bfloat16" or bf16_autocast(profile),
        fp16=profile.dtype == "float16",
        use_cpu=not on_gpu,
        # Recomputing activations saves memory we don't need on a 135M model and
        # nearly doubles the step time on CPU.
        activation_checkpointing=False,
        gradient_checkpointing=False,
        dataloader_num_workers=0,
        # Batches of similar lengths waste less compute on padding.
        train_sampling_strategy="group_by_length",
        disable_tqdm=False,
    )
    args.update(overrides)
    return SFTConfig(**args)


def schedule_preview(kind: str, learning_rate: float, steps: int, warmup: int = WARMUP_STEPS) -> list[float]:
    """The learning rate at every optimizer step of a run with this schedule, from transformers' own scheduler."""
    from transformers import get_scheduler

    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=learning_rate)
    scheduler = get_scheduler(kind, optimizer, num_warmup_steps=warmup, num_training_steps=steps)
    rates = []
    for _ in range(steps):
        rates.append(scheduler.get_last_lr()[0])
        optimizer.step()
        scheduler.step()
    return rates


def score_only_labelled_positions() -> None:
    """Let TRL's fused LM head project only the answer positions on CPU too (same loss, faster steps).

    The loss needs the model's next-token distribution only where a label is:
    the ~14 answer tokens of a ~63-token row. TRL's fused LM head projects just
    those positions onto the 49,152-token vocabulary when it runs its Triton
    kernels (CUDA), and every position elsewhere, because on compiled
    accelerators a number of positions that changes from batch to batch forces
    a recompilation. Eager PyTorch on CPU recompiles nothing, and that
    projection is the largest matrix product of a step, so we take the compact
    path on CPU as well. TRL has no setting for this choice; the switch below is
    the whole change, and ``tests/test_training.py`` checks that loss and
    gradients stay those of the full projection.
    """
    import trl.trainer.utils as trl_utils

    choose = trl_utils._use_triton
    if getattr(choose, "course_compact_on_cpu", False):
        return

    def compact_on_cpu(device) -> bool:
        # Read by TRL only to choose "labelled positions" vs "all positions"; its CPU kernels stay the torch ones.
        return device.type == "cpu" or choose(device)

    compact_on_cpu.course_compact_on_cpu = True
    compact_on_cpu.original = choose
    trl_utils._use_triton = compact_on_cpu


def make_trainer(model, tokenizer, profile: Profile, train_rows: list[dict], val_rows: list[dict],
                 output_dir: Path = OUTPUTS / "checkpoints", peft_config=None, callbacks=None,
                 patience: int | None = None, **overrides):
    """An ``SFTTrainer`` for the profile's recipe.

    ``patience``: stop when val exact match has not improved for that many
    epochs and end on the best epoch's weights. Needs an :class:`EpochEval` in
    ``callbacks`` (it supplies the metric).
    """
    from transformers import EarlyStoppingCallback
    from trl import SFTTrainer

    callbacks = list(callbacks or [])
    if patience:
        if not any(isinstance(c, EpochEval) for c in callbacks):
            raise ValueError("early stopping on val exact match needs an EpochEval callback")
        # restore_callback_states_from_checkpoint: a resumed run keeps its count of epochs without progress.
        overrides = {"load_best_model_at_end": True, "metric_for_best_model": "eval_exact_match",
                     "greater_is_better": True, "restore_callback_states_from_checkpoint": True, **overrides}
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=patience))
    score_only_labelled_positions()
    seed_everything(overrides.get("seed", 0))
    trainer = SFTTrainer(
        model=model,
        args=sft_config(profile, output_dir, **overrides),
        train_dataset=to_dataset(train_rows),
        eval_dataset=to_dataset(val_rows),
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=callbacks,
    )
    if profile.dtype != "bfloat16":
        trainable_in_float32(trainer.model)
    for callback in callbacks:
        if isinstance(callback, EpochEval):
            callback.bind(trainer)
    return trainer


def trainable_in_float32(model) -> None:
    """Keep the weights being trained in float32 unless the profile's weights are bfloat16 (the ``gpu`` profile).

    On a quantized base, TRL stores the LoRA weights in bfloat16, as the QLoRA
    paper does on GPUs that compute in bfloat16. Anywhere else that hurts:

    * fp16 training (the T4 profile) fails at its first step: the gradient
      scaler that keeps fp16 gradients from underflowing has no bfloat16
      kernel (seen on a GPU on 2026-11-30);
    * float32 training (CPU) would run the adapter's products in bfloat16 and
      have AdamW add its small steps to bfloat16 weights, which round many of
      them away, unlike the float32 adapter of a LoRA run it is compared with.

    Float32 weights are what mixed precision expects anyway (autocast still
    computes in half precision). Called before training, so the optimizer sees
    the new tensors.
    """
    for param in model.parameters():
        if param.requires_grad and param.dtype in (torch.float16, torch.bfloat16):
            param.data = param.data.float()


def loss_history(trainer) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
    """(step, train loss) and (step, val loss) points from the trainer's log."""
    train = [(e["step"], e["loss"]) for e in trainer.state.log_history if "loss" in e]
    val = [(e["step"], e["eval_loss"]) for e in trainer.state.log_history if "eval_loss" in e]
    return train, val


PROFILE_STAMP = "course_profile.json"


def save_adapter(trainer, tokenizer, out_dir: Path = ADAPTER_DIR, base_model_id: str | None = None,
                 profile_name: str | None = None, state_dict: dict | None = None) -> Path:
    """Save the LoRA adapter and tokenizer; record the base by id, not by local path.

    ``state_dict``: the weights gathered from every process when training sharded them (FSDP, DeepSpeed ZeRO-3;
    ``trainer.accelerator.get_state_dict``), where this process's own copy holds only its shard.
    """
    out_dir = Path(out_dir)
    model = trainer.model
    if base_model_id is not None:
        for config in model.peft_config.values():
            config.base_model_name_or_path = base_model_id
    stamp = {"profile": profile_name, "splits": splits_fingerprint()} if profile_name is not None else None
    with atomic_dir(out_dir) as tmp:  # a save cut short leaves the previous adapter, never half of one
        # The embedding layer is frozen, so there is nothing of it to save (and no need to look up the base's vocab).
        model.save_pretrained(tmp, save_embedding_layers=False, state_dict=state_dict)
        tokenizer.save_pretrained(tmp)
        if stamp is not None:
            (tmp / PROFILE_STAMP).write_text(json.dumps(stamp) + "\n")
    return out_dir


def splits_fingerprint(splits_dir: Path = SPLITS_DIR) -> str | None:
    """The fingerprint in the curated splits' report (see :func:`helpers.curate.fingerprint`), if any."""
    report = Path(splits_dir) / "report.json"
    return json.loads(report.read_text()).get("fingerprint") if report.is_file() else None


def adapter_stamp(adapter_dir: Path = ADAPTER_DIR) -> dict:
    """What an adapter says it was trained in and on: ``profile`` and the ``splits`` fingerprint, when it says."""
    stamp = Path(adapter_dir) / PROFILE_STAMP
    return json.loads(stamp.read_text()) if stamp.is_file() else {}


def model_for_training(profile: Profile):
    """The base model and tokenizer as chapter 4 trains them (4-bit base for QLoRA profiles)."""
    from helpers.models import load_model

    model, tokenizer = load_model(profile.model_id, quantization=profile.quantize_base,
                                  dtype=profile.dtype, device=profile.device)
    if bf16_autocast(profile):
        # Under bfloat16 autocast PyTorch's fused CPU attention (SDPA) is slower than attention written as plain
        # matrix products, which bfloat16 speeds up: 1.25 -> 0.95 s a step (2-core AVX512-BF16 machine, 2026-11-30).
        # Training only: a model loaded for evaluation keeps the default.
        model.set_attn_implementation("eager")
    if profile.quantize_base:
        from peft import prepare_model_for_kbit_training

        # Casts norms to fp32 and enables input gradients so LoRA can train on a frozen k-bit base.
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
        keep_4bit_layout_for_training(model)
    return model, tokenizer


def keep_4bit_layout_for_training(model) -> int:
    """Stop bitsandbytes from repacking a 4-bit base for CPU inference while it is being trained.

    On a CPU with AVX-512 BF16, bitsandbytes 0.50's 4-bit layer repacks its
    weight into a faster inference layout the first time it runs in eval mode
    without gradients, and nothing packs it back when training resumes. The
    measurements taken during training (the general probe before the first
    step, then after every epoch) are such runs: after them, QLoRA's training
    steps ran faster and stopped learning (on chapter 4b's 6 codes, loss 4.4 ->
    2.5 and stuck, general probe down to 30 %; without the measurements, 4.4
    -> 0.45 in the same 22 steps, 2026-11-30). Returns the layers switched.
    """
    switched = 0
    for module in model.modules():
        if getattr(module, "support_avx512bf16_for_cpu", False):
            module.support_avx512bf16_for_cpu = False
            switched += 1
    return switched


def peft_config_for(profile: Profile, model):
    from helpers.lora import lora_config

    return lora_config(profile.lora_r, profile.lora_alpha, profile.lora_targets, dropout=profile.lora_dropout,
                       top_layers=profile.lora_top_layers, num_layers=model.config.num_hidden_layers)


#: the weights of a checkpoint: a LoRA adapter's or a whole model's
CHECKPOINT_WEIGHTS = ("adapter_model.safetensors", "model.safetensors", "model.safetensors.index.json")
#: what a resume reads besides the weights (the trainer writes trainer_state.json last)
CHECKPOINT_STATE = ("optimizer.pt", "scheduler.pt", "trainer_state.json")


def complete_checkpoint(folder: Path) -> bool:
    """Whether ``folder`` holds all a resume needs: the weights, optimizer, scheduler, random state and trainer state.

    The trainer writes a checkpoint's files one after another into its final
    folder, the trainer state last; a run killed in the middle leaves the
    folder with some of them, and resuming from it would fail or start from
    the wrong step.
    """
    folder = Path(folder)
    if not any((folder / name).is_file() for name in CHECKPOINT_WEIGHTS):
        return False
    if not all((folder / name).is_file() for name in CHECKPOINT_STATE) or not any(folder.glob("rng_state*.pth")):
        return False
    try:
        state = json.loads((folder / "trainer_state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):  # cut short while being written
        return False
    return isinstance(state, dict) and "global_step" in state


def last_checkpoint(output_dir: Path) -> str | None:
    """The newest complete checkpoint in ``output_dir``, or None: where a killed run resumes.

    Newest by step, skipping any that a kill during its save left incomplete
    (:func:`complete_checkpoint`): the highest number alone may be half written.
    """
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return None
    steps = {}
    for folder in output_dir.glob("checkpoint-*"):
        step = folder.name.removeprefix("checkpoint-")
        if step.isdigit() and folder.is_dir():
            steps[int(step)] = folder
    for step in sorted(steps, reverse=True):
        if complete_checkpoint(steps[step]):
            return str(steps[step])
    return None


def train_adapter(profile: Profile, out_dir: Path = ADAPTER_DIR, callbacks=None, resume: bool = False,
                  checkpoints: Path = OUTPUTS / "checkpoints", seed: int = 0):
    """Chapter 4's recipe end to end: returns the trainer after saving the adapter.

    With ``resume=True`` a run that was interrupted (a closed laptop, a Colab
    disconnect, a killed process) continues from its last epoch checkpoint:
    weights, optimizer, scheduler and the random state of the data order all
    come back, so it ends where an uninterrupted run would have.

    ``seed`` draws the adapter's initial weights and the order of the
    training rows: the same recipe under another seed is another sample of
    what it scores (``python -m helpers.profile_run --seeds``).
    """
    model, tokenizer = model_for_training(profile)
    val_rows = load_split("val", profile)
    callbacks = [EpochEval(tokenizer, val_rows, profile.eval_batch_size, probe_limit=profile.probe_limit,
                           mmlu=profile.mmlu_per_epoch), *(callbacks or [])]
    trainer = make_trainer(model, tokenizer, profile, load_split("train", profile), val_rows,
                           output_dir=checkpoints, peft_config=peft_config_for(profile, model), callbacks=callbacks,
                           patience=profile.patience, seed=seed)
    trainer.train(resume_from_checkpoint=last_checkpoint(checkpoints) if resume else None)
    save_adapter(trainer, tokenizer, out_dir, base_model_id=profile.model_id, profile_name=profile.name)
    return trainer


#: Minutes chapter 4's training took per profile on the machines the course was measured on (2 CPU cores for ci,
#: binder and cpu), for the notice a chapter prints before it trains the adapter itself.
REFERENCE_MINUTES = {"ci": 2, "binder": 6, "cpu": 12}


def training_notice(profile: Profile) -> str:
    """What training chapter 4's adapter now will cost: steps, and the time it took on the reference machines."""
    import math

    rows = len(load_split("train", profile))
    steps = math.ceil(rows / (profile.batch_size * profile.grad_accum)) * profile.epochs
    minutes = REFERENCE_MINUTES.get(profile.name)
    took = (f"about {minutes} min on the course's 2-core test machine (slower CPUs take up to twice that)"
            if minutes else "the progress bar shows the time left")
    return f"{steps} steps over {rows} rows: {took}"


def ensure_adapter(profile: Profile, out_dir: Path = ADAPTER_DIR) -> Path:
    """The adapter chapter 4 saved; trained now, after saying so and for how long, when there is none to use.

    An adapter stamped with another profile (say ``ci``'s 8-code run), or
    trained on splits since curated anew (its training rows may now be test
    rows), is retrained, so a chapter never scores a model trained for a
    different run. On Colab, keeping ``outputs/`` on Google Drive (the first
    cell's ``COURSE_OUTPUTS`` lines) saves this retraining in a new session.
    """
    out_dir = Path(out_dir)
    recover(out_dir)  # a save killed between its two renames left the previous adapter aside
    stamp = adapter_stamp(out_dir)
    ensure_curated()
    if not (out_dir / "adapter_config.json").is_file():
        reason = f"No adapter from chapter 4 in {show(out_dir)}"
    elif stamp.get("profile") not in (None, profile.name):
        reason = f"The adapter in {show(out_dir)} was trained in the {stamp['profile']!r} profile, not {profile.name!r}"
    elif stamp.get("splits") not in (None, splits_fingerprint()):
        reason = f"The adapter in {show(out_dir)} was trained on splits that have since been curated again"
    else:
        return out_dir
    print(f"{reason}: training one now with chapter 4's recipe, {training_notice(profile)} ...", flush=True)
    train_adapter(profile, out_dir)
    return out_dir


class AnswerMatch:
    """Exact match read off the trainer's own validation pass, at no extra cost.

    Greedy decoding writes the reference answer exactly when, fed the
    reference so far, the model's top-1 next token is the reference's next
    token at every answer position (the end-of-turn token included): each
    greedy step then reproduces the reference, and the first mismatch would
    be a different token. The validation-loss pass already computes, under
    teacher forcing, whether each labelled token is the top-1 (TRL's
    ``is_top1``, behind its ``mean_token_accuracy``); a forward hook counts the
    rows where all of them are. Generating the 128 validation answers instead
    took 32 s per epoch on the 2-core machine, more than the loss pass itself.

    It can differ from generation-scored exact match only at the margins: a
    generated answer that runs on after a correct code still has that code
    extracted and counted (here the extra token is a miss), and the two passes
    pad differently, which can tip a near tie; and the newline the template
    puts after the end-of-turn token is labelled, though generation stops
    before it. On chapter 4's saved adapter both gave 111 of the 128
    validation rows (2026-11-30).
    """

    def __init__(self):
        self.handle = None
        self.reset()

    def reset(self) -> None:
        self.rows = self.matched = 0

    def attach(self, model) -> None:
        # TRL patches the transformers model (under PEFT, the base model) with its fused LM head.
        target = model.get_base_model() if hasattr(model, "get_base_model") else model
        self.detach()
        self.reset()
        self.handle = target.register_forward_hook(self._count)

    def detach(self) -> None:
        if self.handle is not None:
            self.handle.remove()
            self.handle = None

    def _count(self, module, args, output) -> None:
        is_top1 = getattr(output, "is_top1", None)
        if module.training or is_top1 is None:  # training steps, generation and lm-eval pass by
            return
        labelled = output.label_mask
        with torch.no_grad():
            scored = labelled.any(dim=-1)
            all_top1 = (is_top1.bool() | ~labelled).all(dim=-1)
            self.rows += int(scored.sum())
            self.matched += int((all_top1 & scored).sum())

    @property
    def exact_match(self) -> float | None:
        return self.matched / self.rows if self.rows else None


class EpochEval(TrainerCallback):
    """Scores the model being trained after every evaluation (each epoch).

    * **val exact match**: validation loss says how surprised the model is by
      the right answer; exact match says whether it *writes* it. The two can
      disagree, so we watch both. The score is added to the trainer's metrics
      as ``eval_exact_match``, which early stopping and "keep the best
      checkpoint" then use. By default it is read off the validation-loss pass
      (:class:`AnswerMatch`); ``teacher_forced=False`` generates the answers
      instead, as chapter 5 does on the test split.
    * **general score** (``probe=True``): accuracy on the course's
      general-knowledge probe (``probe_limit`` items), also once before the
      first step, so the forgetting curve starts at the base model.
    * **MMLU** (``mmlu="mmlu_sample"``, a subset of :mod:`helpers.mmlu`):
      accuracy on a public benchmark with its 95 % interval, before the first
      step and after every epoch (``mmlu_acc``, ``mmlu_low``, ``mmlu_high``),
      so a dip in the middle of training shows, not only the endpoints.

    Points land in the trainer's ``log_history``, so a resumed run keeps the
    points measured before the interruption; :attr:`history` reads them back.
    Bound to its trainer (:func:`make_trainer` does it), the callback sends
    each point through ``trainer.log``, which both appends it to the history
    and hands it to every reporter of ``report_to`` (TensorBoard: the
    ``train/val_exact_match`` and ``train/general_acc`` curves). The trainer
    logs its own evaluation metrics before any ``on_evaluate`` runs, so a
    score added to those metrics here would never reach a reporter.
    """

    def __init__(self, tokenizer, rows: list[dict], batch_size: int = 32, probe: bool = True,
                 probe_limit: int | None = None, teacher_forced: bool = True, mmlu: str | None = None):
        self.tokenizer, self.rows, self.batch_size = tokenizer, rows, batch_size
        self.probe, self.probe_limit, self.mmlu = probe, probe_limit, mmlu
        self.match = AnswerMatch() if teacher_forced else None
        self.state = None
        self.trainer = None

    def bind(self, trainer) -> None:
        """Log through ``trainer.log`` from now on (see the class docstring)."""
        self.trainer = trainer

    def _record(self, state, point: dict) -> None:
        if self.trainer is None:
            state.log_history.append(point)
            return
        # log() stamps the epoch and step itself, and appends the point to state.log_history.
        self.trainer.log({k: v for k, v in point.items() if k not in ("epoch", "step")})

    def _general_acc(self, model) -> float:
        from helpers.benchmarks import general_probe

        with _float32_forward(model):
            # no larger a batch than the profile evaluates with: the binder profile keeps its probe's logits small
            return general_probe(model, self.tokenizer, limit=self.probe_limit,
                                 batch_size=min(16, self.batch_size))["acc"]

    def _general(self, model) -> dict:
        """The general measurements of one point: the probe's accuracy and MMLU's, each if asked for."""
        point = {}
        if self.probe:
            point["general_acc"] = self._general_acc(model)
        if self.mmlu:
            from helpers.mmlu import score

            with _float32_forward(model):
                found = score(model, self.tokenizer, self.mmlu)
            point.update(mmlu_acc=found["accuracy"], mmlu_low=found["interval95"][0],
                         mmlu_high=found["interval95"][1])
        return point

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.state = state
        if self.match is not None:
            self.match.attach(model)
        # The probe runs in the main process only: lm-eval returns results to local rank 0 alone, and the other
        # processes of a distributed run need only the exact match (early stopping reads it).
        measured = any("general_acc" in e or "mmlu_acc" in e for e in state.log_history)
        if (self.probe or self.mmlu) and state.is_world_process_zero and not measured:
            with _eval_mode(model):
                self._record(state, {"epoch": 0.0, "step": 0, **self._general(model)})

    def on_train_end(self, args, state, control, **kwargs):
        if self.match is not None:
            self.match.detach()

    def _val_exact_match(self, model) -> float:
        match = self.match
        if match is not None and match.rows and match.rows == len(self.rows):
            # The trainer's validation pass just scored exactly these rows.
            return match.exact_match
        if match is not None and (self.state is None or self.state.is_world_process_zero):
            # Several processes (DDP) each see a share of the loss pass: every one generates the whole split.
            print(f"val exact match: the loss pass scored {match.rows} rows, not the {len(self.rows)} given; "
                  "generating the answers instead", flush=True)
        from helpers.evaluation import evaluate_rows

        return evaluate_rows(model, self.tokenizer, self.rows, self.batch_size, progress=False).exact_match

    def on_evaluate(self, args, state, control, metrics=None, model=None, **kwargs):
        with _eval_mode(model):
            point = {"epoch": round(state.epoch or 0.0, 2), "step": state.global_step,
                     "val_exact_match": self._val_exact_match(model)}
            if self.match is not None:
                self.match.reset()
            if state.is_world_process_zero:
                point.update(self._general(model))
        metrics["eval_exact_match"] = point["val_exact_match"]
        self._record(state, point)
        if state.is_world_process_zero:
            general = f", general score {point['general_acc']:.3f}" if "general_acc" in point else ""
            if "mmlu_acc" in point:
                general += f", MMLU {point['mmlu_acc']:.3f}"
            print(f"epoch {state.epoch or 0:.0f}: val exact match {point['val_exact_match']:.3f}{general}", flush=True)

    @property
    def history(self) -> list[dict]:
        """One dict per measurement: epoch, step, and val_exact_match, general_acc and/or mmlu_acc."""
        log = self.state.log_history if self.state else []
        return [e for e in log if "val_exact_match" in e or "general_acc" in e or "mmlu_acc" in e]


@contextlib.contextmanager
def _float32_forward(model):
    """Score a model that trains under autocast as it will be used: in float32.

    With mixed precision, Accelerate wraps the model's ``forward`` in autocast
    for the whole run and keeps the plain one as ``_original_forward``. The
    general probe calls ``forward``; scored in bfloat16 its points would not
    match chapter 5's float32 scores of the same models (the base model: 146
    against 145 of 240 items, 2026-11-30).
    """
    plain = model.__dict__.get("_original_forward")
    if plain is None:
        yield
        return
    wrapped = model.forward
    model.forward = plain
    try:
        yield
    finally:
        model.forward = wrapped


class _eval_mode:
    """A measurement in the middle of training: eval mode (no dropout), then back, with the random state untouched.

    lm-eval reseeds Python's, NumPy's and torch's generators; without putting
    them back, every epoch would restart the dropout masks and the data order
    from the same seed, and training with the callback would differ from
    training without it.
    """

    def __init__(self, model):
        self.model = model

    def __enter__(self):
        self.was_training = self.model.training
        self.states = (random.getstate(), np.random.get_state(), torch.random.get_rng_state(),
                       torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None)
        self.model.eval()

    def __exit__(self, *exc):
        self.model.train(self.was_training)
        python, numpy_state, cpu, cuda = self.states
        random.setstate(python)
        np.random.set_state(numpy_state)
        torch.random.set_rng_state(cpu)
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)
