import dataclasses

import pytest

from helpers.config import EMBEDDED_MODEL, PROFILES, UnknownProfile, detect_profile_name, get_profile


def test_all_five_profiles_exist():
    assert set(PROFILES) == {"ci", "binder", "cpu", "colab-t4", "gpu"}


def test_cpu_profiles_use_the_embedded_model_in_float32():
    for name in ("ci", "binder", "cpu"):
        profile = PROFILES[name]
        assert profile.model_id == EMBEDDED_MODEL
        assert (profile.device, profile.dtype) == ("cpu", "float32")


def test_t4_profile_uses_fp16_and_a_4bit_base_because_the_t4_has_no_bf16():
    t4 = PROFILES["colab-t4"]
    assert (t4.dtype, t4.quantize_base, t4.device) == ("float16", "4bit", "cuda")
    assert t4.model_id != EMBEDDED_MODEL


def test_gpu_profile_uses_bf16():
    assert PROFILES["gpu"].dtype == "bfloat16"


def test_only_the_cpu_profile_may_compute_in_bf16_and_ci_never_does():
    # CI's figures must not depend on the runner's CPU; GPU profiles choose through their dtype.
    assert {name: p.bf16_autocast for name, p in PROFILES.items()} == {
        "ci": "off", "binder": "off", "cpu": "auto", "colab-t4": "off", "gpu": "off"}


def test_laptop_profiles_train_on_a_subset_of_codes_and_gpu_profiles_on_all():
    # make course's 45 minutes on 2 cores buy 19 codes; a GPU trains on every code
    assert PROFILES["ci"].codes < PROFILES["cpu"].codes < 58
    assert PROFILES["colab-t4"].codes is None and PROFILES["gpu"].codes is None
    # the whole billable table (about 74,000 codes to embed) only where a GPU makes it a matter of seconds
    assert {name: p.rag_scope for name, p in PROFILES.items()} == {
        "ci": "dataset-categories", "binder": "dataset-categories", "cpu": "dataset-categories",
        "colab-t4": "all-billable", "gpu": "all-billable"}


def test_ci_subset_is_spread_over_the_codes():
    from helpers.training import load_split, select_codes

    assert select_codes(list("ABCDEFGH"), 4) == ["A", "C", "E", "G"]
    rows = load_split("train", PROFILES["ci"])
    assert len({r["code"] for r in rows}) == PROFILES["ci"].codes


def test_environment_variable_picks_the_profile(monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "colab-t4")
    assert get_profile().name == "colab-t4"


def test_course_model_swaps_the_model_and_keeps_the_recipe(monkeypatch):
    monkeypatch.setenv("COURSE_MODEL", "embedded")
    gpu = get_profile("gpu")
    assert gpu.model_id == EMBEDDED_MODEL
    assert gpu == dataclasses.replace(PROFILES["gpu"], model_id=EMBEDDED_MODEL)
    monkeypatch.setenv("COURSE_MODEL", "my-org/my-model")
    assert get_profile("cpu").model_id == "my-org/my-model"
    monkeypatch.delenv("COURSE_MODEL")
    assert get_profile("gpu").model_id == PROFILES["gpu"].model_id


def fake_gpu(monkeypatch, capability):
    """A CUDA device of this compute capability whose bf16 check answers as torch's default does on it:
    True even on a T4, because emulation counts (``including_emulation=True``)."""
    import torch

    monkeypatch.delenv("COURSE_PROFILE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)


def no_gpu(monkeypatch, mem_limit=None):
    import torch

    import helpers.config as config

    monkeypatch.delenv("COURSE_PROFILE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(config, "memory_limit_bytes", lambda: mem_limit)


def test_detection_without_gpu_gives_cpu(monkeypatch):
    no_gpu(monkeypatch)
    assert detect_profile_name() == "cpu"


def test_a_t4_like_device_gets_the_t4_profile_although_its_emulated_bf16_check_says_yes(monkeypatch):
    fake_gpu(monkeypatch, (7, 5))
    assert detect_profile_name() == "colab-t4"


def test_an_a100_like_device_gets_the_gpu_profile(monkeypatch):
    fake_gpu(monkeypatch, (8, 0))
    assert detect_profile_name() == "gpu"


def test_a_2_gib_memory_limit_gets_the_binder_profile(monkeypatch):
    no_gpu(monkeypatch, mem_limit=2 * 2**30)
    assert detect_profile_name() == "binder"
    no_gpu(monkeypatch, mem_limit=24 * 2**30)
    assert detect_profile_name() == "cpu"


def test_the_memory_limit_is_read_from_binders_variable(monkeypatch):
    from helpers.config import memory_limit_bytes

    monkeypatch.setenv("MEM_LIMIT", str(2 * 2**30))
    assert memory_limit_bytes() <= 2 * 2**30


def test_unknown_profile_names_the_choices(monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "tpu")
    with pytest.raises(UnknownProfile, match="'tpu' is not a profile; choose one of ci, binder, cpu, colab-t4, gpu"):
        get_profile()
