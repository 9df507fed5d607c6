"""A writer killed in the middle of writing one artifact (run as a subprocess by tests/test_atomic.py).

Usage: python tests/kill_writer.py {results|splits|adapter|merged} {writing|swap} OUT

The artifact is written through the course's own function (``results.record``,
``curate``, ``save_adapter``, ``save_merged``) with new content, and the
process SIGKILLs itself, with no chance to clean up, at one of two points:

* ``writing``: halfway through the bytes: the first file write of a JSON
  artifact stops after half its text; a model's safetensors file is cut to
  half its size, as a kill during the weights leaves it;
* ``swap``: at the commit: just before a file is renamed over the old one; for a
  folder (and the curated set, several files) right after the first rename.

The kill points are injected by replacing names inside ``helpers.atomic`` (its
``os``) and the libraries' safetensors writer; the writing code is the real one.
"""
import os
import signal
import sys
import types
from pathlib import Path

import torch

import helpers.atomic

artifact, point, out = sys.argv[1], sys.argv[2], Path(sys.argv[3])


def die():
    os.kill(os.getpid(), signal.SIGKILL)


class HalfThenDie:
    """A file handle whose first write puts half its text on disk and then kills the process."""

    def __init__(self, fh, after: int):
        self.fh, self.after, self.calls = fh, after, 0

    def write(self, data):
        self.calls += 1
        if self.calls >= self.after:
            self.fh.write(data[: len(data) // 2])
            self.fh.flush()
            os.fsync(self.fh.fileno())
            die()
        return self.fh.write(data)

    def __getattr__(self, name):
        return getattr(self.fh, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self.fh.__exit__(*exc)


def patch_atomic(**names):
    """``helpers.atomic`` sees ``os`` with ``names`` replaced; everything else in the process keeps the real one."""
    helpers.atomic.os = types.SimpleNamespace(**{**vars(os), **names})


def half_safetensors(real):
    def save(tensors, filename, *args, **kwargs):
        real(tensors, filename, *args, **kwargs)
        size = os.path.getsize(filename)
        os.truncate(filename, size // 2)
        die()

    return save


if point == "swap":
    def replace(src, dst):
        if artifact == "results":  # one file: the old one is still in place until this rename
            die()
        os.replace(src, dst)
        die()  # a folder: the old one is now aside; the curated set: one file of several is new

    patch_atomic(replace=replace)
elif artifact in ("results", "splits"):
    # splits: the 200th row of the first file (a few hundred rows into it); results: its single write
    after = 200 if artifact == "splits" else 1
    patch_atomic(fdopen=lambda *args, **kwargs: HalfThenDie(os.fdopen(*args, **kwargs), after))
else:
    import peft.peft_model
    import transformers.modeling_utils

    for module in (peft.peft_model, transformers.modeling_utils):
        module.safe_save_file = half_safetensors(module.safe_save_file)

if artifact == "results":
    from helpers.results import record

    # tens of megabytes of figures: a write that takes a while
    record("killed", {f"figure_{i}": [0.5] * 1000 for i in range(5000)}, path=out)
elif artifact == "splits":
    from helpers.curate import curate
    from helpers.paths import RAW_DATASET

    curate([RAW_DATASET], out)
else:
    from helpers.models import load_model

    model, tokenizer = load_model()
    if artifact == "adapter":
        from types import SimpleNamespace

        from peft import get_peft_model

        from helpers.lora import lora_config
        from helpers.training import save_adapter

        torch.manual_seed(1)  # other initial weights than the adapter the test saved first
        peft_model = get_peft_model(model, lora_config(r=4, alpha=8))
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                torch.nn.init.normal_(param)  # B starts at zero: make the new adapter differ from the old
        save_adapter(SimpleNamespace(model=peft_model), tokenizer, out, base_model_id="embedded:SmolLM2-135M-Instruct")
    else:
        from helpers.merging import save_merged

        with torch.no_grad():
            model.model.norm.weight.mul_(2.0)  # another model than the one saved first
        save_merged(model, tokenizer, out)
print("the writer was not killed", file=sys.stderr)
sys.exit(3)
