"""Chapter 8: preference tuning with DPO, continuing chapter 4's LoRA adapter.

Supervised fine-tuning shows the model the right answer. DPO (Direct
Preference Optimization) shows it a pair, a right answer (*chosen*) and a wrong
one (*rejected*), and raises the first's log-probability relative to the
second's, each measured against a frozen *reference* model; ``beta`` sets how
far the policy may move from that reference. The pairs come from our own task
and our own model:

* prompt: the course's conversation (:func:`helpers.chat.prompt_messages`);
* chosen: the row's reference answer, ``DIAGNOSIS_CODE: <code>``;
* rejected: what chapter 4's model actually wrote where it was wrong on a
  training row (a wrong code, a malformed answer, a non-billable code) and,
  because a model is rarely wrong on rows it was trained on, synthetic hard
  negatives, labelled as such: the code's nearest billable neighbour in the
  ICD-10-CM table (:func:`sibling_code`).

Validation rows never become training pairs: their mistakes make a held-out
preference set, and validation exact match alone chooses ``beta`` and the
learning rate (:func:`grid_search`, :func:`choose`). The notebook reads the
test rows for the chosen setting only (and, like chapter 1, to check that no
pair repeats a held-out complaint: :func:`decontaminate_pairs`).

The reference is the SFT model, not the base model: given a PeftModel and no
``peft_config``, TRL's ``DPOTrainer`` copies the loaded adapter into a second,
frozen adapter named ``ref`` and computes the reference log-probabilities with
it (:func:`reference_report` checks this). Given the base model and a
``peft_config`` instead, it would train a new adapter against the base.
"""
from __future__ import annotations

import functools
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import torch

from helpers import icd10
from helpers.atomic import atomic_dir, write_json
from helpers.chat import RESPONSE_PREFIX, extract_code, prompt_messages
from helpers.config import Profile
from helpers.curate import Row, decontaminate, normalise, phrasing_key
from helpers.evaluation import Scores, generate_answers, row_code, score
from helpers.paths import ADAPTER_DIR, OUTPUTS

DPO_DIR = OUTPUTS / "dpo"
#: the kinds of rejected answer a pair can carry: the model's own mistakes, then the synthetic negatives
MISTAKES = ("wrong_code", "non_billable", "bad_format")
SYNTHETIC = "synthetic_sibling"
#: the name TRL gives the frozen copy of the loaded adapter that serves as the reference model
REFERENCE_ADAPTER = "ref"
#: how the notebook names TRL's loss types
LOSS_NAMES = {"sigmoid": "DPO", "sft": "SFT"}


# --- what the model answers ---------------------------------------------------------------------

def answer_kind(answer: str, reference: str) -> str:
    """``correct``, or which mistake an answer is: ``bad_format``, ``non_billable`` or ``wrong_code``.

    The format comes first: an answer that carries the right code inside
    other text is still one a program cannot read.
    """
    code = extract_code(answer)
    if code is None or answer.strip() != f"{RESPONSE_PREFIX} {code}":
        return "bad_format"
    if code == reference:
        return "correct"
    return "wrong_code" if icd10.is_billable(code) else "non_billable"


@torch.no_grad()
def writes_reference(model, tokenizer, rows: list[dict], batch_size: int = 32) -> list[bool]:
    """Whether greedy decoding would write each row's reference answer, from one forward pass per batch.

    Greedy decoding writes the reference exactly when, fed the reference so
    far, the model's top token is the reference's next token at every answer
    position, end of turn included (the argument behind chapter 4's
    :class:`helpers.training.AnswerMatch`). One pass over prompt plus answer
    settles that, where generating takes a pass per token. Rows are padded on
    the left with positions counted from the first real token, as ``generate``
    does, so every answer ends at the same place and only those last positions
    are projected onto the vocabulary (``logits_to_keep``).
    """
    end = tokenizer.eos_token_id
    verdicts: list[bool] = []
    for start in range(0, len(rows), batch_size):
        batch = rows[start:start + batch_size]
        answers = [tokenizer(r["response"], add_special_tokens=False)["input_ids"] + [end] for r in batch]
        prompts = [tokenizer(tokenizer.apply_chat_template(prompt_messages(r["instruction"]), tokenize=False,
                                                           add_generation_prompt=True),
                             add_special_tokens=False)["input_ids"] for r in batch]
        sequences = [p + a for p, a in zip(prompts, answers)]
        width, keep = max(map(len, sequences)), max(map(len, answers)) + 1
        ids = torch.full((len(batch), width), tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, seq in enumerate(sequences):
            ids[i, width - len(seq):] = torch.tensor(seq)
            mask[i, width - len(seq):] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        logits = model(input_ids=ids.to(model.device), attention_mask=mask.to(model.device),
                       position_ids=positions.to(model.device), logits_to_keep=keep).logits
        top = logits.argmax(-1).cpu()  # (batch, keep): the predictions made at the last `keep` positions
        for i, answer in enumerate(answers):
            # the token at answer position j is predicted at window index keep - 1 - len(answer) + j
            first = keep - 1 - len(answer)
            verdicts.append(top[i, first:first + len(answer)].tolist() == answer)
    return verdicts


def answer_rows(model, tokenizer, rows: list[dict], batch_size: int = 32) -> list[str]:
    """The model's greedy answer to every row: a forward pass settles the rows it gets right, generation the rest.

    On rows a model was trained on it is right almost everywhere, so this
    costs about one forward pass per row instead of one per answer token.
    """
    right = writes_reference(model, tokenizer, rows, batch_size)
    todo = [i for i, ok in enumerate(right) if not ok]
    answers = [r["response"] for r in rows]
    generated = generate_answers(model, tokenizer, [rows[i]["instruction"] for i in todo], batch_size,
                                 progress=False) if todo else []
    for i, answer in zip(todo, generated):
        answers[i] = answer
    return answers


def score_rows(model, tokenizer, rows: list[dict], batch_size: int = 32) -> Scores:
    """:func:`helpers.evaluation.score` of the model's greedy answers to ``rows``, answered by :func:`answer_rows`."""
    started = time.perf_counter()
    answers = answer_rows(model, tokenizer, rows, batch_size)
    return score(rows, answers, time.perf_counter() - started)


def spread(rows: list[dict], limit: int | None) -> list[dict]:
    """At most ``limit`` rows, taken evenly over the split (its codes stay represented); all when None."""
    if not limit or limit >= len(rows):
        return list(rows)
    step = len(rows) / limit
    return [rows[int(i * step)] for i in range(limit)]


# --- synthetic hard negatives -------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def sibling_code(code: str) -> str | None:
    """The billable code nearest to ``code`` in the ICD-10-CM hierarchy, other than itself: a hard negative.

    First the other children of its parent, nearest in table order
    (``M54.50`` -> ``M54.51``, ``S93.401A`` -> ``S93.401D``), then the
    parent's siblings, and so on up; a sibling that is not itself billable
    stands for its first billable descendant (``R42`` -> ``R43.0``).
    """
    import simple_icd_10_cm as icd

    node = code
    while parent := icd.get_parent(node):
        here = icd.get_index(node)
        others = sorted((c for c in icd.get_children(parent) if c != node),
                        key=lambda c: (abs(icd.get_index(c) - here), icd.get_index(c)))
        for other in others:
            if icd10.is_billable(other):
                return other
            leaf = next((d for d in icd.get_descendants(other) if icd10.is_billable(d)), None)
            if leaf:
                return leaf
        node = parent
    return None


# --- preference pairs ---------------------------------------------------------------------------

def pair(row: dict, rejected: str, kind: str) -> dict:
    """One preference pair in TRL's conversational form, with what it came from."""
    return {
        "prompt": prompt_messages(row["instruction"]),
        "chosen": [{"role": "assistant", "content": row["response"]}],
        "rejected": [{"role": "assistant", "content": rejected}],
        "instruction": row["instruction"], "code": row_code(row), "rejected_answer": rejected, "kind": kind,
        "source": row.get("source", ""),
    }


def build_pairs(rows: list[dict], answers: list[str], fill_to: int = 0) -> tuple[list[dict], dict]:
    """Preference pairs from the model's ``answers`` to ``rows``, and the counts of what went in and what did not.

    Every row the model got wrong gives a pair whose rejected answer is the
    model's own. Rows it got right then give synthetic pairs, rejecting the
    code's nearest sibling, until there are ``fill_to`` pairs; they are taken
    one code at a time in turn, so every code gets its share. A pair is left
    out when its rejected answer is the chosen one once normalised, or when it
    repeats a complaint and rejected answer already paired. The counts add up:
    ``rows == correct + sum of the mistakes``, and every mistake is a pair or
    a dropped duplicate or chosen-equals-rejected.
    """
    if len(rows) != len(answers):
        raise ValueError(f"{len(rows)} rows but {len(answers)} answers: one answer per row is needed")
    pairs: list[dict] = []
    seen: set[tuple[str, str]] = set()
    counts: Counter = Counter()

    def add(row: dict, rejected: str, kind: str) -> None:
        if normalise(rejected) == normalise(row["response"]):
            counts["dropped_chosen_equals_rejected"] += 1
            return
        key = (phrasing_key(row["instruction"]), normalise(rejected))
        if key in seen:
            counts["dropped_duplicate"] += 1
            return
        seen.add(key)
        pairs.append(pair(row, rejected, kind))

    right_by_code: dict[str, list[dict]] = defaultdict(list)
    for row, answer in zip(rows, answers):
        kind = answer_kind(answer, row_code(row))
        counts[kind] += 1
        if kind == "correct":
            right_by_code[row_code(row)].append(row)
        else:
            add(row, answer.strip(), kind)
    queues = [list(reversed(right_by_code[code])) for code in sorted(right_by_code)]
    while len(pairs) < fill_to and any(queues):
        for queue in queues:
            if not queue or len(pairs) >= fill_to:
                continue
            row = queue.pop()
            sibling = sibling_code(row_code(row))
            if sibling is None:
                counts["no_sibling"] += 1
                continue
            add(row, f"{RESPONSE_PREFIX} {sibling}", SYNTHETIC)
    report = {"rows": len(rows), "answers": {k: counts[k] for k in ("correct", *MISTAKES)},
              "pairs": {k: sum(p["kind"] == k for p in pairs) for k in (*MISTAKES, SYNTHETIC)},
              "dropped": {"duplicate": counts["dropped_duplicate"],
                          "chosen_equals_rejected": counts["dropped_chosen_equals_rejected"],
                          "no_sibling": counts["no_sibling"]},
              "total": len(pairs)}
    return pairs, report


def decontaminate_pairs(pairs: list[dict], held_out: list[dict]) -> tuple[list[dict], list[dict]]:
    """``(kept, removed)``: pairs whose complaint is (nearly) a held-out complaint are removed.

    The same rule as chapter 1's split (:func:`helpers.curate.decontaminate`):
    instruction wording cut out, word 4-grams of the rest, a pair removed
    when it shares 70 % of them with one held-out row. The course's training
    rows passed that rule already; a team's own preference data may not have.
    """
    as_rows = [Row(file="pairs", line=i + 1, raw="", data={"instruction": p["instruction"]}, code=p["code"])
               for i, p in enumerate(pairs)]
    held = [Row(file="held-out", line=i + 1, raw="", data={"instruction": r["instruction"]}, code=row_code(r))
            for i, r in enumerate(held_out)]
    splits = {"train": as_rows, "val": held, "test": []}
    decontaminate(splits)
    kept_lines = {row.line for row in splits["train"]}
    kept = [p for i, p in enumerate(pairs) if i + 1 in kept_lines]
    removed = [p for i, p in enumerate(pairs) if i + 1 not in kept_lines]
    return kept, removed


def to_preference_dataset(pairs: list[dict]):
    """A ``datasets.Dataset`` with only the columns TRL's DPOTrainer reads."""
    from datasets import Dataset

    return Dataset.from_list([{k: p[k] for k in ("prompt", "chosen", "rejected")} for p in pairs])


# --- training -----------------------------------------------------------------------------------

def load_policy(profile: Profile, adapter_dir: Path = ADAPTER_DIR):
    """Chapter 4's base model and adapter, the adapter trainable: where every DPO run starts.

    ``PeftModel.from_pretrained`` loads an adapter frozen unless told
    ``is_trainable=True``; a frozen one leaves DPO nothing to train, and its
    first step fails with "element 0 of tensors does not require grad".
    """
    from peft import PeftModel

    from helpers.training import model_for_training

    base, tokenizer = model_for_training(profile)
    return PeftModel.from_pretrained(base, str(adapter_dir), is_trainable=True), tokenizer


def dpo_config(profile: Profile, output_dir: Path, beta: float, learning_rate: float, steps: int,
               loss: str = "sigmoid", seed: int = 0, **overrides):
    """TRL's ``DPOConfig`` for one run. Several of its defaults differ from ``TrainingArguments``' and are set here.

    ``loss`` names TRL loss types, joined by ``+`` when they are summed:
    ``"sigmoid"`` is DPO; ``"sft"`` is plain supervised fine-tuning on the
    chosen answers inside the same trainer, a fair comparison (same rows,
    batches, steps and learning rate); ``"sigmoid+sft"`` is DPO with that
    cross-entropy added, which keeps the chosen answers from losing
    probability while the pairs are pushed apart.
    """
    from trl import DPOConfig

    from helpers.training import bf16_autocast, curated_max_length

    args = dict(
        output_dir=str(output_dir), max_steps=steps, per_device_train_batch_size=profile.dpo_batch_size,
        per_device_eval_batch_size=profile.dpo_batch_size, learning_rate=learning_rate,  # TRL's default: 1e-6
        beta=beta, loss_type=loss.split("+"),
        # A tenth of the steps at a rising rate; none in a short run, whose first step would otherwise be at rate 0.
        lr_scheduler_type="constant_with_warmup", warmup_steps=steps // 10,
        max_length=profile.max_length or curated_max_length(),  # TRL's default: 1024
        logging_steps=1,  # a reward point per step for the curves (TRL's default: 10)
        eval_strategy="no", save_strategy="no", report_to="none", seed=seed,
        # TRL turns bfloat16 on whenever fp16 is off, on a CPU too; the ci profile computes in float32.
        bf16=profile.dtype == "bfloat16" or bf16_autocast(profile), fp16=profile.dtype == "float16",
        use_cpu=profile.device != "cuda",
        # TRL's default gradient_checkpointing=True reaches transformers 5 through that deprecated name, which turns
        # activation checkpointing on; recomputing activations nearly doubles a CPU step. The new name wins.
        activation_checkpointing=False,
        dataloader_num_workers=0, disable_tqdm=True,
    )
    args.update(overrides)
    return DPOConfig(**args)


def make_dpo_trainer(model, tokenizer, profile: Profile, pairs: list[dict], beta: float, learning_rate: float,
                     steps: int, loss: str = "sigmoid", output_dir: Path = DPO_DIR / "checkpoints",
                     seed: int = 0, **overrides):
    """A ``DPOTrainer`` that continues ``model`` (a trainable PeftModel) against a frozen copy of its adapter."""
    from peft import PeftModel
    from transformers import PrinterCallback
    from trl import DPOTrainer

    from helpers.training import score_only_labelled_positions, seed_everything, trainable_in_float32

    if not isinstance(model, PeftModel):
        raise TypeError("DPO here continues chapter 4's adapter: pass the PeftModel from load_policy()")
    score_only_labelled_positions()
    seed_everything(seed)
    trainer = DPOTrainer(model=model, ref_model=None, processing_class=tokenizer,
                         args=dpo_config(profile, output_dir, beta, learning_rate, steps, loss, seed, **overrides),
                         train_dataset=to_preference_dataset(pairs))
    if profile.dtype != "bfloat16":
        trainable_in_float32(trainer.model)
    # With progress bars off, the Trainer prints every step's log as a dict; the chapter plots them from
    # log_history instead, so the printer goes (the logs themselves are kept).
    trainer.remove_callback(PrinterCallback)
    return trainer


def adapter_weights(model, adapter: str) -> dict[str, torch.Tensor]:
    """A copy of one adapter's LoRA weights, keyed by their name with the adapter's name taken out."""
    return {name.replace(f".{adapter}.", "."): param.detach().clone()
            for name, param in model.named_parameters() if f".{adapter}." in name}


def reference_report(trainer, sft_weights: dict[str, torch.Tensor] | None = None) -> dict:
    """What the trainer's reference is: the adapter it uses, whether it is frozen and equal to the SFT adapter."""
    model = trainer.accelerator.unwrap_model(trainer.model)
    if trainer.ref_model is not None:
        return {"reference": "a separate model", "adapter": None}
    if REFERENCE_ADAPTER not in model.peft_config:
        return {"reference": "the base model (adapters disabled)", "adapter": None}
    ref = adapter_weights(model, REFERENCE_ADAPTER)
    sft = sft_weights if sft_weights is not None else adapter_weights(model, "default")
    differs = max((float((ref[k] - sft[k]).abs().max()) for k in ref), default=float("nan"))
    trainable = sum(p.requires_grad for n, p in model.named_parameters() if f".{REFERENCE_ADAPTER}." in n)
    return {"reference": f"adapter {REFERENCE_ADAPTER!r}", "adapter": REFERENCE_ADAPTER, "tensors": len(ref),
            "same_keys_as_sft": ref.keys() == sft.keys(), "max_abs_difference_from_sft": differs,
            "trainable_tensors": trainable}


def save_policy(model, tokenizer, out_dir: Path, profile: Profile, about: dict | None = None) -> Path:
    """The trained adapter alone (not TRL's reference copy), with the tokenizer and a stamp, written atomically."""
    from helpers.training import PROFILE_STAMP, splits_fingerprint

    model = getattr(model, "module", model)
    for config in model.peft_config.values():
        config.base_model_name_or_path = profile.model_id  # by id, not by local path: loads anywhere
    with atomic_dir(out_dir) as tmp:
        # Without selected_adapters PEFT saves every adapter, the reference too (in a subfolder).
        model.save_pretrained(tmp, selected_adapters=["default"], save_embedding_layers=False)
        tokenizer.save_pretrained(tmp)
        write_json(tmp / PROFILE_STAMP, {"profile": profile.name, "splits": splits_fingerprint(), **(about or {})})
    return Path(out_dir)


@dataclass
class Run:
    """One DPO (or continued-SFT) run from chapter 4's adapter, scored on validation rows."""

    beta: float
    learning_rate: float
    loss: str
    steps: int
    val: Scores
    adapter_dir: Path
    train_seconds: float
    log: list[dict] = field(repr=False, default_factory=list)

    @property
    def name(self) -> str:
        flavour = "+".join(LOSS_NAMES.get(part, part) for part in self.loss.split("+"))
        if self.loss == "sft":
            return f"{flavour} lr={self.learning_rate:g}"  # beta plays no part in the SFT loss
        return f"{flavour} beta={self.beta:g} lr={self.learning_rate:g}"

    def row(self) -> dict:
        margin = round(self.log[-1].get("rewards/margins", float("nan")), 3) if self.log else None
        return table_row(self.name, self.val, final_margin=margin, train_min=round(self.train_seconds / 60, 2))


def table_row(name: str, val, final_margin: float | None = None, train_min: float = 0.0) -> dict:
    """One row of the chapter's tables: a model's validation scores (``val``: its Scores) and its training."""
    low, high = val.interval95()
    return {"run": name, "val_exact_match": round(val.exact_match, 4), "val_ci95": f"{low:.3f}-{high:.3f}",
            "format": round(val.format_compliance, 4), "billable": round(val.billable_rate, 4),
            "final_margin": final_margin, "train_min": train_min}


def run_setting(profile: Profile, pairs: list[dict], val_rows: list[dict], beta: float, learning_rate: float,
                steps: int | None = None, loss: str = "sigmoid", adapter_dir: Path = ADAPTER_DIR,
                out_dir: Path | None = None, seed: int = 0) -> Run:
    """Train one setting from chapter 4's adapter, save it, and score it on ``val_rows`` (greedy answers in
    float32, from :func:`score_rows`)."""
    from helpers.training import _float32_forward

    steps = steps or profile.dpo_steps
    out_dir = Path(out_dir or DPO_DIR / "runs" / f"{loss}-beta{beta:g}-lr{learning_rate:g}")
    model, tokenizer = load_policy(profile, adapter_dir)
    trainer = make_dpo_trainer(model, tokenizer, profile, pairs, beta, learning_rate, steps, loss,
                               output_dir=DPO_DIR / "checkpoints", seed=seed)
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    save_policy(trainer.model, tokenizer, out_dir, profile,
                {"beta": beta, "learning_rate": learning_rate, "loss": loss, "steps": steps})
    trainer.model.eval()
    with _float32_forward(trainer.model):  # scored as it will be used: in float32, even after bfloat16 training
        val = score_rows(trainer.model, tokenizer, val_rows, profile.eval_batch_size)
    log = [e for e in trainer.state.log_history if "rewards/margins" in e]
    return Run(beta, learning_rate, loss, steps, val, out_dir, seconds, log)


def grid_search(profile: Profile, pairs: list[dict], val_rows: list[dict], betas=None, learning_rates=None,
                steps: int | None = None, adapter_dir: Path = ADAPTER_DIR) -> list[Run]:
    """Every (beta, learning rate) of the profile's grid, each trained from chapter 4's adapter and scored on
    validation rows. It is given no test rows and reads none: the choice it feeds is made on validation alone."""
    runs = []
    for beta in betas or profile.dpo_betas:
        for lr in learning_rates or profile.dpo_learning_rates:
            run = run_setting(profile, pairs, val_rows, beta, lr, steps, adapter_dir=adapter_dir)
            print(f"{run.name}: val exact match {run.val.exact_match:.3f} "
                  f"({run.train_seconds / 60:.1f} min of training)", flush=True)
            runs.append(run)
    return runs


def choose(runs: list[Run]) -> Run:
    """The run with the best validation exact match; a tie goes to the one that moves least from the SFT model
    (the larger beta, then the smaller learning rate)."""
    if not runs:
        raise ValueError("no runs to choose from")
    return max(runs, key=lambda r: (r.val.exact_match, r.beta, -r.learning_rate))


# --- after training -----------------------------------------------------------------------------

def reward_curves(log: list[dict]) -> dict[str, list[float]]:
    """Per step, from the trainer's log: the reward margin (chosen minus rejected, times beta) and the share of
    pairs whose chosen answer out-scores the rejected one (reward accuracy)."""
    return {"step": [e["step"] for e in log], "margin": [e["rewards/margins"] for e in log],
            "accuracy": [e["rewards/accuracies"] for e in log], "chosen": [e["rewards/chosen"] for e in log],
            "rejected": [e["rewards/rejected"] for e in log]}


def targeted_confusions(before: Scores, after: Scores, pairs: list[dict]) -> dict:
    """On one set of rows: how often each model answered a code the pairs taught it to reject for that reference.

    The mistakes DPO was meant to fix are the (reference, rejected code)
    combinations of its training pairs; this counts the rows where a model
    made one of them, before and after.
    """
    taught = {(p["code"], extract_code(p["rejected_answer"]) or "(no code)") for p in pairs}

    def count(scores: Scores) -> int:
        return sum((p["reference"], p["predicted"] or "(no code)") in taught
                   for p in scores.predictions if not p["correct"])

    return {"before": count(before), "after": count(after), "combinations_taught": len(taught)}


def change_interval(before: Scores, after: Scores, seed: int = 0) -> dict:
    """The change in exact match from ``before`` to ``after`` on the same rows, with its 95 % interval.

    Each row contributes after-minus-before correctness (-1, 0 or +1); the
    interval is scipy's bootstrap of their mean, resampling rows (so the
    pairing is kept), fixed by ``seed``. An interval that straddles zero is
    not yet a change, the same verdict as McNemar's test in other words.
    """
    import numpy as np
    from scipy.stats import bootstrap

    if [p["instruction"] for p in before.predictions] != [p["instruction"] for p in after.predictions]:
        raise ValueError("the change needs both models scored on the same rows, in the same order")
    diff = np.array([int(b["correct"]) - int(a["correct"])
                     for a, b in zip(before.predictions, after.predictions)], dtype=float)
    change = float(diff.mean()) if len(diff) else 0.0
    if not diff.any():  # no row changed: every resample is zero, and scipy's interval would be undefined
        return {"change": change, "ci95": (0.0, 0.0), "n": len(diff)}
    ci = bootstrap((diff,), np.mean, confidence_level=0.95, n_resamples=2000, method="percentile",
                   rng=np.random.default_rng(seed)).confidence_interval
    return {"change": change, "ci95": (round(float(ci.low), 4), round(float(ci.high), 4)), "n": len(diff)}


def flavours_figure():
    """A diagram of the fine-tuning flavours: what each learns from, and what it updates the model with."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch

    lanes = [
        ("SFT", ["prompt + right answer", "cross-entropy on\nthe answer tokens", "model"], "#d9e8f5"),
        ("RLHF (PPO)", ["preference pairs", "reward model", "PPO: sample, score,\nupdate (KL to reference)"],
         "#f9e0c7"),
        ("DPO · ORPO · KTO", ["preference pairs\n(KTO: thumbs up/down)", "a loss on the pair's\nlog-prob ratios",
                              "model (DPO, KTO: vs\nfrozen reference)"], "#dcefd8"),
        ("GRPO", ["prompts + a checker\n(verifiable reward)", "sample a group,\nscore each answer",
                  "update toward the group's\nbetter answers (KL to ref.)"], "#eadcf2"),
    ]
    fig, ax = plt.subplots(figsize=(11, 4.6))
    ax.set_xlim(0, 11)
    ax.set_ylim(0, len(lanes))
    ax.axis("off")
    for row, (name, boxes, colour) in enumerate(lanes):
        y = len(lanes) - row - 0.5
        ax.text(0.05, y, name, va="center", ha="left", fontsize=11, fontweight="bold")
        for col, label in enumerate(boxes):
            x = 2.2 + col * 3.0
            ax.add_patch(FancyBboxPatch((x, y - 0.33), 2.4, 0.66, boxstyle="round,pad=0.03", fc=colour, ec="grey"))
            ax.text(x + 1.2, y, label, ha="center", va="center", fontsize=9)
            if col:
                ax.annotate("", xy=(x - 0.02, y), xytext=(x - 0.58, y), arrowprops={"arrowstyle": "->", "lw": 1.2})
    ax.set_title("What each flavour learns from (left) and how it changes the model (right)", fontsize=11)
    fig.tight_layout()
    return fig


def describe_report(report: dict) -> str:
    """A pair-building report as a few readable lines."""
    answers = ", ".join(f"{k} {v}" for k, v in report["answers"].items())
    pairs = ", ".join(f"{k} {v}" for k, v in report["pairs"].items())
    dropped = ", ".join(f"{k} {v}" for k, v in report["dropped"].items())
    return (f"{report['rows']} rows answered: {answers}\n"
            f"{report['total']} pairs: {pairs}\n"
            f"left out: {dropped}")
