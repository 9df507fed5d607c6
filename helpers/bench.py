"""What the course's training recipe buys over TRL's defaults, lever by lever: ``make bench``.

    python -m helpers.bench [--steps 6] [--repeats 3] [--warmup 2] [--only course,trl-defaults] [--out FILE]

One model (the embedded SmolLM2-135M-Instruct), one set of training rows (the
``ci`` profile's 8 codes), one LoRA configuration (the ``cpu`` profile's: r32,
alpha 64, every linear projection of every block) and the same number of
optimizer steps of 8 rows, trained

* with the course's recipe (``helpers.training.make_trainer`` on the ``cpu``
  profile: prompt/completion rows with an empty system turn, only the answer
  positions projected onto the vocabulary, bf16 autocast where the CPU has
  bf16 instructions, LoRA dropout 0, batches grouped by length);
* with TRL's ``SFTConfig`` defaults (conversational ``messages`` rows, so the
  loss covers every token and SmolLM2's template injects its default system
  prompt; gradient checkpointing on; every position projected; TRL's own
  learning rate and precision defaults);
* with the course's recipe minus one lever at a time (the ablation), and as
  full fine-tuning, LoRA and QLoRA in float32 (memory and time).

Every setup runs on the same number of threads (``--threads``; PyTorch's
default, every core, unless given), but the threads lever, which runs on the
other count (1, or every core when the bench runs on 1). Each configuration
trains in its own process, so each peak memory is its own:
``warmup`` steps first, then ``repeats`` windows of ``steps`` steps, each
window giving examples/s and real (non-padding) tokens/s; the report gives the
median and the spread of the windows. After the last step the model answers
the validation rows of those 8 codes (greedy, float32), in the prompt format
it was trained on: exact match at equal steps. Results go to
``outputs/bench.json`` with the machine and the library versions, and a table
is printed.

Padding-free batches (``padding_free=True``) are left out: without a
flash-attention kernel, which CPUs lack, TRL's padding-free batches let a row
attend to the rows packed before it, so they change what is computed and are
no speed lever here.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from helpers.memory import peak_rss_mib
from helpers.paths import OUTPUTS, ROOT

BENCH_FILE = OUTPUTS / "bench.json"
#: the rows: the ci profile's codes (210 training rows, enough for 26 steps of 8 without repeating one)
BENCH_CODES = 8
BATCH = 8
#: TRL's ModelConfig default LoRA dropout, the value the dropout lever is measured against
TRL_LORA_DROPOUT = 0.05
#: full fine-tuning's rate (chapter 4b): LoRA's 1e-3 would wreck a full model
FULL_FT_RATE = 5e-5


@dataclass(frozen=True)
class Setup:
    """One configuration: the course's recipe with some levers turned back, or TRL's defaults."""

    label: str
    trl_defaults: bool = False
    compact_logits: bool = True  # project only the answer positions (helpers.training.score_only_labelled_positions)
    rows: str = "prompt-completion"  # or "messages": loss on every token
    system_turn: bool = True  # the course's empty system turn; False: the template injects its default prompt
    bf16_autocast: bool = True  # where the CPU multiplies bf16 1.5x faster (Profile.bf16_autocast="auto")
    lora_dropout: float = 0.0
    length_grouping: bool = True
    other_threads: bool = False  # the threads lever: 1 thread where the bench runs on several, else every core
    gradient_checkpointing: bool = False
    method: str = "lora"  # "lora", "qlora" (4-bit NF4 base) or "full"


SETUPS: dict[str, Setup] = {
    "course": Setup("course recipe"),
    "trl-defaults": Setup("TRL SFTConfig defaults", trl_defaults=True, compact_logits=False, rows="messages",
                          system_turn=False, gradient_checkpointing=True, length_grouping=False),
    # the ablation: the course's recipe with one lever turned back
    "no-compact-logits": Setup("every position projected", compact_logits=False),
    "default-system-prompt": Setup("template's default system prompt", system_turn=False),
    "messages-format": Setup("messages rows (loss on every token)", rows="messages"),
    "no-bf16-autocast": Setup("float32 compute (LoRA fp32)", bf16_autocast=False),
    "lora-dropout": Setup(f"LoRA dropout {TRL_LORA_DROPOUT}", lora_dropout=TRL_LORA_DROPOUT),
    "no-length-grouping": Setup("random batches (no length grouping)", length_grouping=False),
    "gradient-checkpointing": Setup("gradient checkpointing on", gradient_checkpointing=True),
    "other-threads": Setup("the other thread count (1 or every core)", other_threads=True),
    # what each way of fine-tuning costs, all in float32 so the weights' precision is the only difference
    "full-ft-fp32": Setup("full fine-tuning, float32", bf16_autocast=False, method="full"),
    "qlora-fp32": Setup("QLoRA (NF4 base), float32 compute", bf16_autocast=False, method="qlora"),
}
#: each lever of the ablation, by the setup that turns it back
LEVERS = {"compact logits": "no-compact-logits", "no injected system prompt": "default-system-prompt",
          "prompt/completion rows": "messages-format", "bf16 autocast": "no-bf16-autocast",
          "LoRA dropout 0": "lora-dropout", "length grouping": "no-length-grouping",
          "no gradient checkpointing": "gradient-checkpointing", "thread count": "other-threads"}


def bench_profile(setup: Setup):
    """The cpu profile's recipe on the bench's rows, with the setup's LoRA, precision and base."""
    from helpers.config import PROFILES

    return dataclasses.replace(PROFILES["cpu"], codes=BENCH_CODES, patience=None, lora_dropout=setup.lora_dropout,
                               bf16_autocast="auto" if setup.bf16_autocast else "off",
                               quantize_base="4bit" if setup.method == "qlora" else None)


def as_rows(rows: list[dict], setup: Setup) -> list[dict]:
    """Training rows in the setup's format: prompt/completion (loss on the answer) or messages (loss on all)."""
    out = []
    for row in rows:
        prompt = row["prompt"] if setup.system_turn else [m for m in row["prompt"] if m["role"] != "system"]
        if setup.rows == "messages":
            out.append({"messages": [*prompt, *row["completion"]]})
        else:
            out.append({"prompt": prompt, "completion": row["completion"]})
    return out


def reset_peak_rss() -> bool:
    """Restart the kernel's peak-RSS count of this process (``/proc/self/clear_refs``): a phase measured alone."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def make_setup_trainer(setup: Setup, total_steps: int, out_dir: Path):
    """The trainer for ``setup``: the course's ``make_trainer``, or a plain ``SFTTrainer`` with TRL's defaults."""
    import trl.trainer.utils as trl_utils
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from helpers.lora import count_parameters
    from helpers.models import load_model
    from helpers.training import (load_split, make_trainer, model_for_training, peft_config_for,
                                  score_only_labelled_positions, seed_everything, sft_config)

    profile = bench_profile(setup)
    rows = as_rows(load_split("train", profile)[: total_steps * BATCH], setup)
    val_rows = as_rows(load_split("val", profile), setup)
    # Only what measuring needs differs from each side's own settings: the step count, no checkpoints, no
    # evaluation during the steps, and a count of the real tokens.
    measuring = dict(max_steps=total_steps, save_strategy="no", eval_strategy="no", report_to="none",
                     include_num_input_tokens_seen="non_padding", disable_tqdm=True)
    if setup.trl_defaults:
        model, tokenizer = load_model(profile.model_id)  # as from_pretrained gives it: float32, default attention
        trainer = SFTTrainer(model=model, args=SFTConfig(output_dir=str(out_dir), use_cpu=True, **measuring),
                             train_dataset=Dataset.from_list(rows), processing_class=tokenizer,
                             peft_config=peft_config_for(profile, model))
    else:
        model, tokenizer = model_for_training(profile)
        peft_config, extra = None, {}
        if setup.method == "full":
            model.requires_grad_(True)
            extra["learning_rate"] = FULL_FT_RATE
        else:
            peft_config = peft_config_for(profile, model)
        if not setup.length_grouping:
            extra["train_sampling_strategy"] = "random"
        if setup.gradient_checkpointing:
            extra.update(gradient_checkpointing=True, activation_checkpointing=True)
        if setup.rows == "prompt-completion":
            trainer = make_trainer(model, tokenizer, profile, rows, val_rows, output_dir=out_dir,
                                   peft_config=peft_config, **measuring, **extra)
        else:  # make_trainer builds prompt/completion datasets only: the same recipe on messages rows
            score_only_labelled_positions()
            seed_everything(0)
            trainer = SFTTrainer(model=model, args=sft_config(profile, out_dir, **measuring, **extra),
                                 train_dataset=Dataset.from_list(rows), processing_class=tokenizer,
                                 peft_config=peft_config)
    if not setup.compact_logits and getattr(trl_utils._use_triton, "course_compact_on_cpu", False):
        trl_utils._use_triton = trl_utils._use_triton.original  # TRL's own choice: every position off CUDA
    return trainer, tokenizer, count_parameters(trainer.model)


def windows(step_seconds: list[float], step_tokens: list[int], warmup: int, steps: int, repeats: int) -> list[dict]:
    """Examples/s and real tokens/s of each window of ``steps`` steps after the ``warmup`` steps."""
    found = []
    for i in range(repeats):
        part = slice(warmup + i * steps, warmup + (i + 1) * steps)
        seconds, tokens = sum(step_seconds[part]), sum(step_tokens[part])
        found.append({"examples_per_s": round(steps * BATCH / seconds, 3), "tokens_per_s": round(tokens / seconds, 1),
                      "seconds": round(seconds, 2)})
    return found


def spread(values: list[float]) -> dict:
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3), "max": round(max(values), 3)}


def thread_count(setup: Setup, threads: int) -> int:
    """The bench's thread count, or for the threads lever the other one: 1 if it runs on several, else every core."""
    if not setup.other_threads:
        return threads
    return 1 if threads > 1 else os.cpu_count() or 1


def answer_loss(model, tokenizer, rows: list[dict], messages) -> float:
    """Mean negative log-likelihood per token of the reference answers (end of turn included), each row prompted as
    the model was trained: a graded measure of how near the model is to writing them, where exact match after a
    few steps is still 0 for every setup."""
    import torch

    total, count = 0.0, 0
    with torch.no_grad():
        for row in rows:
            turns = messages(row["instruction"])
            prompt = tokenizer.apply_chat_template(turns, add_generation_prompt=True, tokenize=False)
            full = tokenizer.apply_chat_template([*turns, {"role": "assistant", "content": row["response"]}],
                                                 tokenize=False)
            start = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
            ids = torch.tensor([tokenizer(full, add_special_tokens=False)["input_ids"]], device=model.device)
            log_probs = torch.log_softmax(model(input_ids=ids).logits[0, start - 1:-1].float(), dim=-1)
            targets = ids[0, start:]
            total -= log_probs.gather(1, targets[:, None]).sum().item()
            count += len(targets)
    return total / count


def measure(name: str, steps: int, repeats: int, warmup: int, val_rows: int | None = None,
            threads: int | None = None) -> dict:
    """Train one setup in this process and measure it (see the module docstring)."""
    import torch
    from transformers import TrainerCallback

    from helpers.chat import prompt_messages
    from helpers.evaluation import generate_answers, score
    from helpers.speed import bf16_speedup
    from helpers.training import _float32_forward, load_split

    setup = SETUPS[name]
    torch.set_num_threads(thread_count(setup, threads or torch.get_num_threads()))
    total = warmup + steps * repeats

    class Clock(TrainerCallback):
        def __init__(self):
            self.seconds, self.cpu, self.tokens, self.start, self.cpu_start = [], [], [], 0.0, 0.0

        def on_step_begin(self, args, state, control, **kwargs):
            self.start = time.perf_counter()
            self.cpu_start = time.process_time()

        def on_step_end(self, args, state, control, **kwargs):
            self.seconds.append(time.perf_counter() - self.start)
            self.cpu.append(time.process_time() - self.cpu_start)
            self.tokens.append(int(state.num_input_tokens_seen))

    clock = Clock()
    with tempfile.TemporaryDirectory() as tmp:
        trainer, tokenizer, params = make_setup_trainer(setup, total, Path(tmp))
        trainer.add_callback(clock)
        loading_peak = peak_rss_mib()  # read before the reset: the model and trainer built, no step taken
        reset = reset_peak_rss()
        trainer.train()
    # VmHWM, not ru_maxrss, which hands this process the parent's peak across fork and exec (helpers.memory)
    train_peak = peak_rss_mib()
    process_peak = max((p for p in (loading_peak, train_peak) if p is not None), default=None)
    step_tokens = [b - a for a, b in zip([0, *clock.tokens], clock.tokens)]
    measured = windows(clock.seconds, step_tokens, warmup, steps, repeats)

    profile = bench_profile(setup)
    val = load_split("val", profile)[:val_rows]
    system = (lambda text: prompt_messages(text)) if setup.system_turn else \
        (lambda text: [{"role": "user", "content": text}])
    model = trainer.model
    model.eval()
    with _float32_forward(model):
        answers = generate_answers(model, tokenizer, [r["instruction"] for r in val], 16, progress=False,
                                   messages=system)
        loss = answer_loss(model, tokenizer, val, system)
    scores = score(val, answers)
    return {
        "setup": name, "label": setup.label, "settings": dataclasses.asdict(setup),
        "bf16_autocast_used": bool(trainer.args.bf16), "torch_threads": torch.get_num_threads(),
        "bf16_speedup_of_this_cpu": round(bf16_speedup(), 2),
        "learning_rate": trainer.args.learning_rate, "steps": len(clock.seconds),
        "trainable_params": params.trainable, "total_params": params.total,
        "train_loss": [round(e["loss"], 4) for e in trainer.state.log_history if "loss" in e],
        "windows": measured,
        # CPU time of the timed steps (every thread of the process): on a machine shared with other work the wall
        # time also counts the waiting, this does not
        "cpu_seconds_per_step": round(statistics.median(clock.cpu[warmup:]), 3),
        "examples_per_s": spread([w["examples_per_s"] for w in measured]),
        "tokens_per_s": spread([w["tokens_per_s"] for w in measured]),
        "peak_rss_mb": round(process_peak, 1) if process_peak is not None else None,
        "peak_rss_training_mb": round(train_peak, 1) if reset and train_peak is not None else None,
        "val_exact_match": round(scores.exact_match, 4), "val_answer_loss": round(loss, 4), "val_rows": scores.n,
    }


def run_child(name: str, steps: int, repeats: int, warmup: int, timeout: int, val_rows: int | None,
              threads: int | None) -> dict:
    """:func:`measure` in a fresh process: its peak memory is its own."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        done = subprocess.run([sys.executable, "-m", "helpers.bench", "--one", name, "--steps", str(steps),
                               "--repeats", str(repeats), "--warmup", str(warmup), "--out", str(out),
                               *(["--val-rows", str(val_rows)] if val_rows else []),
                               *(["--threads", str(threads)] if threads else [])],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-12:])
            return {"setup": name, "label": SETUPS[name].label, "error": f"exit {done.returncode}: {tail}"}
        return json.loads(out.read_text())


def summarise(runs: dict[str, dict]) -> dict:
    """The headline ratio, each lever's contribution and the memory comparison, from the measured runs."""
    def rate(name):
        run = runs.get(name)
        return run["examples_per_s"]["median"] if run and "error" not in run else None

    out: dict = {}
    course, trl = rate("course"), rate("trl-defaults")
    if course and trl:
        out["speedup_vs_trl_defaults"] = round(course / trl, 2)
        out["val_exact_match"] = {"course": runs["course"]["val_exact_match"],
                                  "trl_defaults": runs["trl-defaults"]["val_exact_match"]}
        out["val_answer_loss"] = {"course": runs["course"].get("val_answer_loss"),
                                  "trl_defaults": runs["trl-defaults"].get("val_answer_loss")}
        out["targets"] = {"speedup_at_least_3x": course / trl >= 3.0,
                          "val_exact_match_equal_or_better": runs["course"]["val_exact_match"]
                          >= runs["trl-defaults"]["val_exact_match"]}
        if None not in out["val_answer_loss"].values():
            out["targets"]["val_answer_loss_equal_or_lower"] = \
                out["val_answer_loss"]["course"] <= out["val_answer_loss"]["trl_defaults"]
    if course:
        # each lever: how much faster the course's recipe is with it than without it (all other levers kept)
        out["levers"] = {lever: round(course / rate(name), 2) for lever, name in LEVERS.items() if rate(name)}
        if rate("other-threads"):
            out["threads"] = {"bench": runs["course"]["torch_threads"], "lever": runs["other-threads"]["torch_threads"]}
    memory = {name: runs[name]["peak_rss_training_mb"] or runs[name]["peak_rss_mb"]
              for name in ("full-ft-fp32", "no-bf16-autocast", "qlora-fp32")
              if name in runs and "error" not in runs[name]}
    if {"no-bf16-autocast", "qlora-fp32"} <= memory.keys():
        ratio = memory["qlora-fp32"] / memory["no-bf16-autocast"]
        out["qlora_vs_lora_fp32_peak_rss"] = round(ratio, 3)
        out.setdefault("targets", {})["qlora_peak_rss_at_most_0.6x_lora_fp32"] = ratio <= 0.6
    return out


def table(report: dict) -> str:
    """The runs as a text table: examples/s and tokens/s (median, min-max), peak memory, val exact match."""
    lines = [f"{'setup':<42} {'examples/s':>20} {'real tokens/s':>22} {'peak RSS MiB':>14} {'val EM':>7} "
             f"{'answer loss':>11}"]
    for run in report["runs"].values():
        if "error" in run:
            lines.append(f"{run['label']:<42} failed: {run['error'].splitlines()[-1][:60]}")
            continue
        ex, tok = run["examples_per_s"], run["tokens_per_s"]
        peak = run["peak_rss_training_mb"] or run["peak_rss_mb"]
        lines.append(f"{run['label']:<42} {ex['median']:>7.2f} ({ex['min']:.2f}-{ex['max']:.2f})"
                     f" {tok['median']:>9.0f} ({tok['min']:.0f}-{tok['max']:.0f})"
                     f" {peak:>14.0f} {run['val_exact_match']:>7.3f} {run.get('val_answer_loss', float('nan')):>11.3f}")
    summary = report["summary"]
    if "speedup_vs_trl_defaults" in summary:
        lines.append(f"course recipe vs TRL defaults: {summary['speedup_vs_trl_defaults']}x examples/s; "
                     f"val exact match {summary['val_exact_match']['course']:.3f} vs "
                     f"{summary['val_exact_match']['trl_defaults']:.3f}")
    for lever, ratio in summary.get("levers", {}).items():
        lines.append(f"  lever {lever:<28} {ratio:.2f}x (the recipe with it / without it)")
    if "qlora_vs_lora_fp32_peak_rss" in summary:
        lines.append(f"QLoRA / LoRA fp32 peak RSS while training: {summary['qlora_vs_lora_fp32_peak_rss']}")
    return "\n".join(lines)


def versions() -> dict:
    from helpers.train import versions as library_versions

    return library_versions()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=6, help="optimizer steps per timed window")
    parser.add_argument("--repeats", type=int, default=3, help="timed windows per setup")
    parser.add_argument("--warmup", type=int, default=2, help="steps before the first window")
    parser.add_argument("--only", default=",".join(SETUPS), help="setups to run, comma-separated")
    parser.add_argument("--out", type=Path, default=BENCH_FILE)
    parser.add_argument("--timeout", type=int, default=900, help="seconds one setup may take")
    parser.add_argument("--val-rows", type=int, default=None, help="validation rows to score (default: all)")
    parser.add_argument("--threads", type=int, default=None,
                        help="PyTorch threads per setup (default: PyTorch's own, every core); on a machine shared with "
                             "other work, 1 avoids threads waiting for each other")
    parser.add_argument("--one", choices=list(SETUPS), help=argparse.SUPPRESS)  # a child process
    args = parser.parse_args(argv)
    from helpers.atomic import write_json

    if args.warmup + args.steps * args.repeats > 210 // BATCH:
        parser.error("warmup + steps x repeats must stay within the 26 steps the bench's 210 rows give")
    from helpers.notebook import quiet_libraries

    quiet_libraries()
    if args.one:
        write_json(args.out, measure(args.one, args.steps, args.repeats, args.warmup, args.val_rows, args.threads))
        return 0
    names = [n for n in args.only.split(",") if n]
    unknown = [n for n in names if n not in SETUPS]
    if unknown:
        parser.error(f"unknown setup {unknown[0]!r}; choose from {', '.join(SETUPS)}")
    from helpers.speed import machine
    from helpers.training import ensure_curated

    ensure_curated()  # once, before the children read the splits
    start = time.perf_counter()
    report = {"date": time.strftime("%Y-%m-%d"), "machine": machine(), "versions": versions(),
              # how busy the machine was (1-minute load average; above the core count, work was waiting)
              "load_average_at_start": round(os.getloadavg()[0], 1),
              "settings": {"steps_per_window": args.steps, "windows": args.repeats, "warmup_steps": args.warmup,
                           "val_rows": args.val_rows, "threads": args.threads or "PyTorch default",
                           "batch": BATCH, "codes": BENCH_CODES, "model": "embedded SmolLM2-135M-Instruct"},
              "runs": {}}
    for name in names:
        print(f"{name} ({SETUPS[name].label}) ...", flush=True)
        report["runs"][name] = run_child(name, args.steps, args.repeats, args.warmup, args.timeout, args.val_rows,
                                         args.threads)
        report["summary"] = summarise(report["runs"])
        report["minutes"] = round((time.perf_counter() - start) / 60, 1)
        report["load_average_at_end"] = round(os.getloadavg()[0], 1)
        write_json(args.out, report)  # rewritten after each setup: a run cut short keeps what it measured
    print(table(report))
    return 1 if any("error" in run for run in report["runs"].values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
