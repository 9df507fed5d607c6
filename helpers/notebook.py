"""What every chapter notebook does first: quiet logs, fixed seeds, the active profile.

Library progress bars and warnings differ from run to run; silencing them
keeps the stored notebook outputs readable and lets nbval compare the cells
that matter. Long steps still show the course's own progress bars.
"""
from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

from helpers.config import Profile, get_profile


def quiet() -> None:
    """Library warnings, log lines and progress bars off (the course's own progress bars stay)."""
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning)
    warnings.filterwarnings("ignore", message=".*IProgress not found.*")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # bitsandbytes looks for optional Hub-hosted CPU kernels and logs when they are absent.
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    # transformers 5.25 brings `kernels`, which says offline that it skips the Hub's publisher check for those kernels.
    logging.getLogger("kernels").setLevel(logging.ERROR)
    import datasets
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    datasets.logging.set_verbosity_error()
    datasets.disable_progress_bars()


def setup(seed: int = 0) -> Profile:
    quiet()
    use_freed_cores()
    from helpers.training import seed_everything

    seed_everything(seed)
    profile = get_profile()
    # The embedded model's one-time conversion runs here, in the set-up cell whose output nbval does not compare;
    # otherwise the first checked cell that loads the model would print it whenever the cache is missing.
    from helpers.models import base_model_dir

    base_model_dir(profile.model_id)
    return profile


def use_freed_cores() -> int | None:
    """Take more threads when ``$COURSE_THREADS_FILE`` names a file that holds a number (None when it does not).

    ``make test`` runs the chapters beside the unit tests, one thread each on two cores; when the unit tests end it
    writes 2 into this file, and every chapter that starts afterwards (and the processes it starts) uses both.
    """
    path = os.environ.get("COURSE_THREADS_FILE")
    try:
        threads = int(Path(path).read_text().strip()) if path else 0
    except (OSError, ValueError):
        return None
    if threads < 1:
        return None
    import torch

    torch.set_num_threads(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)
    return threads


quiet_libraries = quiet  # the name helpers.train and helpers.bench use


def profile_table(profile: Profile) -> str:
    return "\n".join(f"{key:<16} {value}" for key, value in profile.describe().items())
