"""A speed benchmark for chapter 4's training step, written to ``outputs/speed.json``.

    python -m helpers.speed [--steps 8] [--profile cpu]

It times the first ``steps`` optimizer steps of chapter 4's recipe twice, on
the same batches: once with TRL's LM head projecting every position (what TRL
does off CUDA) and once projecting only the answer positions
(:func:`helpers.training.score_only_labelled_positions`), each in a fresh
process. The losses of the two runs must agree; the file records both, the
seconds per step, and what the machine is (cores, vector extensions, a float32
matrix-product rate), because step times mean little without it.
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from helpers.atomic import write_json
from helpers.paths import OUTPUTS, ROOT

SPEED_FILE = OUTPUTS / "speed.json"


def matmul_gflops(dtype: str = "float32", repeats: int = 50, seconds: float = 1.0) -> float:
    """The rate of one training-sized matrix product in ``dtype``: a batch of tokens through an MLP projection.

    Timed over ``repeats`` products or ``seconds``, whichever ends first: where bfloat16 is emulated one product
    takes seconds, and fifty would take minutes.
    """
    import torch

    kind = getattr(torch, dtype)
    a, b = torch.randn(640, 576, dtype=kind), torch.randn(576, 1536, dtype=kind)
    a @ b  # warm-up: the first product allocates
    done, start = 0, time.perf_counter()
    while done < repeats and (done == 0 or time.perf_counter() - start < seconds):
        a @ b
        done += 1
    return 2 * 640 * 576 * 1536 * done / (time.perf_counter() - start) / 1e9


@functools.lru_cache(maxsize=None)
def bf16_speedup() -> float:
    """How many times faster this CPU multiplies in bfloat16 than in float32 (measured once per process).

    CPUs with bfloat16 instructions (AVX512-BF16, AMX) run the product several
    times faster; on the others PyTorch emulates bfloat16, which is slower than
    float32. Measured rather than read off the CPU's flags, so the same test
    holds for any vendor and instruction set.
    """
    return matmul_gflops("bfloat16") / matmul_gflops("float32")


def cpu() -> dict:
    """The processor, its cores and its vector extensions (AVX-512 BF16 and AMX decide bf16 autocast)."""
    flags = set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("flags"):
                flags = {f for f in line.split(":", 1)[1].split() if f.startswith(("avx", "amx"))}
                break
    return {"processor": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "vector_extensions": sorted(flags)}


def machine() -> dict:
    """:func:`cpu`, PyTorch's threads and measured float32 and bfloat16 matrix-product rates."""
    import torch

    return {**cpu(), "torch_threads": torch.get_num_threads(),
            "fp32_matmul_gflops": round(matmul_gflops("float32", 100), 1),
            "bf16_matmul_gflops": round(matmul_gflops("bfloat16", 100), 1)}


def time_steps(profile_name: str, steps: int, compact: bool) -> dict:
    """Train ``steps`` steps of chapter 4's recipe in this process and time each one."""
    import dataclasses

    from transformers import TrainerCallback

    import trl.trainer.utils as trl_utils
    from helpers.config import get_profile
    from helpers.training import load_split, make_trainer, model_for_training, peft_config_for

    # Measure the step alone: no per-epoch evaluation, no checkpoints.
    profile = dataclasses.replace(get_profile(profile_name), patience=None)
    model, tokenizer = model_for_training(profile)
    trainer = make_trainer(model, tokenizer, profile, load_split("train", profile), load_split("val", profile),
                           output_dir=OUTPUTS / "speed-checkpoints", peft_config=peft_config_for(profile, model),
                           max_steps=steps, eval_strategy="no", save_strategy="no", disable_tqdm=True)
    if not compact:  # make_trainer switched the compact path on; put TRL's own choice back
        trl_utils._use_triton = trl_utils._use_triton.original

    class Clock(TrainerCallback):
        def __init__(self):
            self.seconds = []

        def on_step_begin(self, *args, **kwargs):
            self.start = time.perf_counter()

        def on_step_end(self, *args, **kwargs):
            self.seconds.append(time.perf_counter() - self.start)

    clock = Clock()
    trainer.add_callback(clock)
    trainer.train()
    return {"compact": compact, "seconds_per_step": [round(s, 2) for s in clock.seconds],
            "losses": [round(e["loss"], 4) for e in trainer.state.log_history if "loss" in e]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--profile", default=None, help="default: COURSE_PROFILE or the detected one")
    parser.add_argument("--one", choices=["full", "compact"], help=argparse.SUPPRESS)  # a child run
    args = parser.parse_args(argv)
    from helpers.config import get_profile

    profile = get_profile(args.profile).name
    if args.one:
        print(json.dumps(time_steps(profile, args.steps, args.one == "compact")))
        return
    runs = {}
    for kind in ("full", "compact"):
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        done = subprocess.run([sys.executable, "-m", "helpers.speed", "--one", kind, "--steps", str(args.steps),
                               "--profile", profile], env=env, capture_output=True, text=True, check=True)
        runs[kind] = json.loads(done.stdout.strip().splitlines()[-1])
    full, compact = (sum(runs[k]["seconds_per_step"]) for k in ("full", "compact"))
    report = {"date": time.strftime("%Y-%m-%d"), "profile": profile, "steps": args.steps, "machine": machine(),
              "all_positions": runs["full"], "answer_positions_only": runs["compact"],
              "speed_up": round(full / compact, 2),
              # the two projections sum in different orders: equal up to float rounding, not bit for bit
              "same_losses": all(abs(a - b) < 1e-3 for a, b in zip(runs["full"]["losses"], runs["compact"]["losses"]))}
    write_json(SPEED_FILE, report)
    print(f"{args.steps} steps: {full:.0f} s projecting every position, {compact:.0f} s projecting the answer "
          f"positions only ({report['speed_up']}x); same losses: {report['same_losses']}")


if __name__ == "__main__":
    main()
