import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# The tests never reach the Hugging Face Hub, however they are started.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def base():
    """The embedded model and tokenizer (converted once, cached in outputs/models/base)."""
    from helpers.models import load_model

    return load_model()


def run_module(module: str, *args: str, cwd: Path = ROOT):
    import subprocess

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="session")
def tokenizer():
    """The embedded model's tokenizer, with the course's pad token."""
    from helpers.models import load_tokenizer

    return load_tokenizer()
