import dataclasses

import pytest

from helpers.config import EMBEDDED_MODEL, PROFILES, UnknownProfile, detect_profile_name, get_profile


def test_all_four_profiles_exist():
    assert set(PROFILES) == {"ci", "cpu", "colab-t4", "gpu"}


def test_cpu_profiles_use_the_embedded_model_in_float32():
    for name in ("ci", "cpu"):
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
        "ci": "off", "cpu": "auto", "colab-t4": "off", "gpu": "off"}


def test_ci_profile_trains_on_a_subset_of_codes_and_cpu_on_all():
    assert PROFILES["ci"].codes and PROFILES["cpu"].codes is None
    assert PROFILES["ci"].rag_scope == "dataset-categories" and PROFILES["cpu"].rag_scope == "all-billable"


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


def test_detection_without_gpu_gives_cpu(monkeypatch):
    import torch

    monkeypatch.delenv("COURSE_PROFILE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert detect_profile_name() == "cpu"


def test_detection_on_a_gpu_without_bf16_gives_t4(monkeypatch):
    import torch

    monkeypatch.delenv("COURSE_PROFILE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert detect_profile_name() == "colab-t4"


def test_unknown_profile_names_the_choices(monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "tpu")
    with pytest.raises(UnknownProfile, match="'tpu' is not a profile; choose one of ci, cpu, colab-t4, gpu"):
        get_profile()
