import os
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# Tests write into their own outputs folder, never into the one `make course` fills (../conftest.py checks it).
os.environ.setdefault("COURSE_OUTPUTS", str(ROOT / "outputs" / "test"))
# The tests never reach the Hugging Face Hub, however they are started.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="module", autouse=True)
def _module_files_removed_once_passed(request, tmp_path_factory):
    """A test module whose tests all passed leaves nothing in the temporary folder: its fixtures save adapters and
    merged models, gigabytes over the whole suite, more than a CI machine's free disk may hold. A module with a
    failure keeps its files to look at. (Session fixtures keep theirs outside it, in outputs/.)"""
    root = tmp_path_factory.getbasetemp()
    before, failed = set(root.iterdir()), request.session.testsfailed
    yield
    if request.session.testsfailed == failed:
        for entry in set(root.iterdir()) - before:
            if entry.is_symlink():  # pytest's "…current" link to a numbered folder
                entry.unlink()
            else:
                shutil.rmtree(entry, ignore_errors=True)


@pytest.fixture(scope="session")
def base():
    """The embedded model and tokenizer (converted once, cached in outputs/models/base)."""
    from helpers.models import load_model

    return load_model()


def save_random_adapter(base, folder: Path) -> Path:
    """A LoRA adapter on the embedded base with a small random update, saved the way chapter 4 saves one.

    An untrained update is zero; a random one makes the merged weights differ from the base's.
    """
    import torch
    from peft import get_peft_model

    from helpers.config import EMBEDDED_MODEL
    from helpers.lora import lora_config

    model, tokenizer = base
    peft_model = get_peft_model(model, lora_config(r=4, alpha=8, dropout=0.0))
    torch.manual_seed(0)
    with torch.no_grad():
        for name, weight in peft_model.named_parameters():
            if "lora_B" in name:
                weight.normal_(std=0.02)
    for config in peft_model.peft_config.values():
        config.base_model_name_or_path = EMBEDDED_MODEL
    peft_model.save_pretrained(folder, save_embedding_layers=False)
    tokenizer.save_pretrained(folder)
    peft_model.unload()  # the shared base fixture gets its plain layers back
    return Path(folder)


def run_module(module: str, *args: str, cwd: Path = ROOT, timeout: float = 600):
    import subprocess

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def tokenizer():
    """The embedded model's tokenizer, with the course's pad token."""
    from helpers.models import load_tokenizer

    return load_tokenizer()
