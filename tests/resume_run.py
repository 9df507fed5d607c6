"""A tiny LoRA run for the resume-after-kill test (run as a subprocess by tests/test_resume.py).

Usage: python tests/resume_run.py OUT_DIR {fresh|kill-at-4|kill-in-save-at-4|resume}[-epochs]
Prints one JSON line with the final losses and a checksum of the adapter weights. With ``-epochs``, the run is
chapter 4's: per-epoch evaluation (EpochEval) and early stopping, checkpoints each epoch, killed after epoch 2.
``kill-in-save-at-4`` dies in the middle of the step-4 checkpoint: its weights, optimizer, scheduler and random
state are written, its trainer state is not.
"""
import json
import os
import signal
import sys
from pathlib import Path

import torch
from transformers import TrainerCallback, TrainerState

from helpers.chat import prompt_completion
from helpers.config import get_profile
from helpers.lora import lora_config
from helpers.models import load_model
from helpers.paths import DATA
from helpers.training import EpochEval, last_checkpoint, make_trainer

out_dir, mode = Path(sys.argv[1]), sys.argv[2]
rows = [{**r, **prompt_completion(r)} for r in json.loads((DATA / "examples" / "seed_format.json").read_text())]


class KillAfterSave(TrainerCallback):
    """SIGKILL this process right after the checkpoint of step 4 is written: no clean shutdown at all."""

    def on_save(self, args, state, control, **kwargs):
        if state.global_step == 4:
            os.kill(os.getpid(), signal.SIGKILL)


def dying_save_to_json(state, json_path, save=TrainerState.save_to_json):
    """TrainerState.save_to_json, except that it SIGKILLs the process instead of writing checkpoint-4's state.

    The trainer writes the trainer state last, so the step-4 folder is left with everything else in it.
    """
    if Path(json_path).parent.name == "checkpoint-4":
        os.kill(os.getpid(), signal.SIGKILL)
    return save(state, json_path)


by_epoch = mode.endswith("-epochs")
mode = mode.removesuffix("-epochs")
if mode == "kill-in-save-at-4":
    TrainerState.save_to_json = dying_save_to_json
model, tokenizer = load_model()
kill = [KillAfterSave()] if mode == "kill-at-4" else []
if by_epoch:
    # Four epochs of 2 steps at a learning rate of zero: val exact match never improves, so patience 2 stops the
    # run after epoch 3, but only if the count of epochs without progress survives the kill after epoch 2.
    watch = EpochEval(tokenizer, rows[:2], batch_size=2, probe_limit=4)
    schedule = dict(callbacks=[watch, *kill], patience=2, num_train_epochs=4, per_device_train_batch_size=4,
                    learning_rate=0.0)
else:
    watch = None
    schedule = dict(callbacks=kill, max_steps=8, per_device_train_batch_size=2, save_strategy="steps",
                    save_steps=2, eval_strategy="no")
trainer = make_trainer(
    model, tokenizer, get_profile("ci"), rows, rows[:2], output_dir=out_dir,
    peft_config=lora_config(r=4, alpha=8, top_layers=2, num_layers=model.config.num_hidden_layers),
    save_total_limit=None, warmup_steps=0, disable_tqdm=True, max_length=256, **schedule,
)
trainer.train(resume_from_checkpoint=last_checkpoint(out_dir) if mode == "resume" else None)
losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
weights = torch.cat([p.detach().flatten() for n, p in trainer.model.named_parameters() if "lora_" in n])
print(json.dumps({"steps": trainer.state.global_step, "last_loss": losses[-1],
                  "weights_sum": weights.double().sum().item(), "weights_abs": weights.double().abs().sum().item(),
                  "best_metric": trainer.state.best_metric, "history": watch.history if watch else None}))
