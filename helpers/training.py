"""Chapter 4: supervised fine-tuning with TRL's SFTTrainer.

The curated splits are in TRL's conversational prompt/completion form, so the
trainer computes the loss on the completion ("DIAGNOSIS_CODE: ...") only and
not on the prompt it will always be given.
"""
from __future__ import annotations

import contextlib
import json
import random
from pathlib import Path

import numpy as np
import torch
from transformers import TrainerCallback

from helpers.config import Profile
from helpers.jsonl import read_jsonl
from helpers.paths import ADAPTER_DIR, OUTPUTS, SPLITS_DIR, show


def seed_everything(seed: int = 0) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def ensure_curated(splits_dir: Path = SPLITS_DIR) -> Path:
    """Chapter 1's output directory, curating ``data/`` first when a notebook runs on its own.

    The course's splits are its raw file plus the train-only second batch.
    Splits curated from the course's raw file without that batch, or under an
    older prompt format, dataset or set of rules (see
    :func:`helpers.curate.fingerprint`), are curated again. Splits a team
    curated from its own files are used as they are.
    """
    from helpers.curate import curate, fingerprint
    from helpers.paths import BATCH2_DATASET, RAW_DATASET

    report_path = Path(splits_dir) / "report.json"
    settings = {}
    if report_path.is_file():
        report = json.loads(report_path.read_text())
        ours = report.get("inputs") == [show(RAW_DATASET)] and \
            report.get("train_only_inputs", []) in ([], [show(BATCH2_DATASET)])
        if not ours or report.get("fingerprint") == fingerprint([RAW_DATASET], [BATCH2_DATASET]):
            return Path(splits_dir)
        settings = report.get("settings", {})  # a seed or max_length given to chapter 1 stays
        print(f"The splits in {show(splits_dir)} are from an older dataset, prompt format or curation: "
              f"curating again ...")
    curate([RAW_DATASET], Path(splits_dir), train_only=[BATCH2_DATASET], **settings)
    return Path(splits_dir)


def curated_max_length(splits_dir: Path = SPLITS_DIR) -> int:
    """The token limit chapter 1 chose from the measured length distribution."""
    report = json.loads((ensure_curated(splits_dir) / "report.json").read_text())
    return report["tokens"]["max_length"]


def load_split(name: str, profile: Profile | None = None, splits_dir: Path = SPLITS_DIR) -> list[dict]:
    """Rows of a curated split (``train``, ``val``, ``test`` or ``train_uncurated``), as the profile uses them."""
    path = ensure_curated(splits_dir) / f"{name}.jsonl"
    rows = read_jsonl(path)
    if profile is not None and profile.codes:
        from helpers.chat import extract_code

        codes = sorted({r["code"] for r in read_jsonl(Path(splits_dir) / "test.jsonl")})
        keep = set(select_codes(codes, profile.codes))
        # Uncurated rows have no checked code: go by what their answer says.
        rows = [r for r in rows if r.get("code", extract_code(r["response"])) in keep]
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
        warmup_steps=10,
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
                 profile_name: str | None = None) -> Path:
    """Save the LoRA adapter and tokenizer; record the base by id, not by local path."""
    out_dir = Path(out_dir)
    model = trainer.model
    if base_model_id is not None:
        for config in model.peft_config.values():
            config.base_model_name_or_path = base_model_id
    # The embedding layer is frozen, so there is nothing of it to save (and no need to look up the base's vocab).
    model.save_pretrained(out_dir, save_embedding_layers=False)
    tokenizer.save_pretrained(out_dir)
    if profile_name is not None:
        stamp = {"profile": profile_name, "splits": splits_fingerprint()}
        (out_dir / PROFILE_STAMP).write_text(json.dumps(stamp) + "\n")
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


def last_checkpoint(output_dir: Path) -> str | None:
    """The newest complete checkpoint in ``output_dir``, or None: where a killed run resumes."""
    from transformers.trainer_utils import get_last_checkpoint

    return get_last_checkpoint(str(output_dir)) if Path(output_dir).is_dir() else None


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
    callbacks = [EpochEval(tokenizer, val_rows, profile.eval_batch_size, probe_limit=profile.probe_limit),
                 *(callbacks or [])]
    trainer = make_trainer(model, tokenizer, profile, load_split("train", profile), val_rows,
                           output_dir=checkpoints, peft_config=peft_config_for(profile, model), callbacks=callbacks,
                           patience=profile.patience, seed=seed)
    trainer.train(resume_from_checkpoint=last_checkpoint(checkpoints) if resume else None)
    save_adapter(trainer, tokenizer, out_dir, base_model_id=profile.model_id, profile_name=profile.name)
    return trainer


def ensure_adapter(profile: Profile, out_dir: Path = ADAPTER_DIR) -> Path:
    """The adapter chapter 4 saved; trained now when a notebook runs on its own.

    An adapter stamped with another profile (say ``ci``'s 12-code run), or
    trained on splits since curated anew (its training rows may now be test
    rows), is retrained, so a chapter never scores a model trained for a
    different run.
    """
    out_dir = Path(out_dir)
    stamp = adapter_stamp(out_dir)
    ensure_curated()
    if not (out_dir / "adapter_config.json").is_file():
        print("No adapter from chapter 4 yet: training one with the same recipe ...")
        train_adapter(profile, out_dir)
    elif stamp.get("profile") not in (None, profile.name):
        print(f"The adapter was trained in the {stamp['profile']!r} profile: retraining for {profile.name!r} ...")
        train_adapter(profile, out_dir)
    elif stamp.get("splits") not in (None, splits_fingerprint()):
        print("The adapter was trained on splits that have since been curated again: retraining ...")
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

    Points land in the trainer's ``log_history``, so a resumed run keeps the
    points measured before the interruption; :attr:`history` reads them back.
    """

    def __init__(self, tokenizer, rows: list[dict], batch_size: int = 32, probe: bool = True,
                 probe_limit: int | None = None, teacher_forced: bool = True):
        self.tokenizer, self.rows, self.batch_size = tokenizer, rows, batch_size
        self.probe, self.probe_limit = probe, probe_limit
        self.match = AnswerMatch() if teacher_forced else None
        self.state = None

    def _general_acc(self, model) -> float:
        from helpers.benchmarks import general_probe

        with _float32_forward(model):
            return general_probe(model, self.tokenizer, limit=self.probe_limit)["acc"]

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.state = state
        if self.match is not None:
            self.match.attach(model)
        if self.probe and not any("general_acc" in e for e in state.log_history):
            with _eval_mode(model):
                state.log_history.append({"epoch": 0.0, "step": 0, "general_acc": self._general_acc(model)})

    def on_train_end(self, args, state, control, **kwargs):
        if self.match is not None:
            self.match.detach()

    def _val_exact_match(self, model) -> float:
        match = self.match
        if match is not None and match.rows and match.rows == len(self.rows):
            # The trainer's validation pass just scored exactly these rows.
            return match.exact_match
        if match is not None:
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
            if self.probe:
                point["general_acc"] = self._general_acc(model)
        metrics["eval_exact_match"] = point["val_exact_match"]
        state.log_history.append(point)
        general = f", general score {point['general_acc']:.3f}" if "general_acc" in point else ""
        print(f"epoch {state.epoch or 0:.0f}: val exact match {point['val_exact_match']:.3f}{general}", flush=True)

    @property
    def history(self) -> list[dict]:
        """One dict per measurement: epoch, step, and val_exact_match and/or general_acc."""
        log = self.state.log_history if self.state else []
        return [e for e in log if "val_exact_match" in e or "general_acc" in e]


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
