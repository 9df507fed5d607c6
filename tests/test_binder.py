"""The binder profile fits mybinder.org's memory: chapter 4's training, measured in a process of its own."""
import json
import os
import re
import subprocess
import sys

from helpers.config import PROFILES

from conftest import ROOT

#: mybinder.org gives a session about 2 GB; the kernel, Jupyter and the browser's share leave about this much
BINDER_BUDGET_MIB = 1536

CHAPTER_4_STEPS = """
import json
from helpers.memory import peak_rss_mib
from helpers.notebook import setup
from helpers.training import EpochEval, load_split, make_trainer, model_for_training, peft_config_for

profile = setup()
model, tokenizer = model_for_training(profile)
train_rows, val_rows = load_split("train", profile), load_split("val", profile)
watch = EpochEval(tokenizer, val_rows[:8], profile.eval_batch_size, probe_limit=8)
trainer = make_trainer(model, tokenizer, profile, train_rows, val_rows[:8], output_dir="{out}",
                       peft_config=peft_config_for(profile, model), callbacks=[watch],
                       max_steps=3, eval_strategy="steps", eval_steps=3, save_strategy="no", disable_tqdm=True)
trainer.train()
print(json.dumps({{"peak_mib": peak_rss_mib(),
                   "steps": trainer.state.global_step, "micro_batch": profile.batch_size,
                   "accumulation": profile.grad_accum, "measured": len(watch.history)}}))
"""


def binder_environment() -> dict:
    """The variables binder/start exports before Binder starts the notebook server (and so every kernel)."""
    text = (ROOT / "binder" / "start").read_text()
    return dict(re.findall(r"^export (\w+)=(\S+)$", text, re.M))


def test_chapter_4_training_under_the_binder_profile_peaks_under_its_memory_budget(tmp_path):
    env = {**os.environ, **binder_environment(), "COURSE_PROFILE": "binder", "PYTHONPATH": str(ROOT)}
    assert env["MALLOC_MMAP_THRESHOLD_"]
    done = subprocess.run([sys.executable, "-c", CHAPTER_4_STEPS.format(out=tmp_path)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    # three optimizer steps of 4 accumulated micro-batches, then a validation pass with the general probe
    assert report["steps"] == 3 and report["accumulation"] == PROFILES["binder"].grad_accum
    assert report["measured"] >= 2  # the probe before training and the evaluation after the steps
    print(f"binder profile: chapter 4's training peaked at {report['peak_mib']:.0f} MiB")
    assert report["peak_mib"] <= BINDER_BUDGET_MIB
