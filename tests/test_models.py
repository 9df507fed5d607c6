import pytest
import torch

from helpers.config import EMBEDDED_MODEL
from helpers.errors import CourseError
from helpers.models import base_model_dir, convert_gguf, embedded_gguf, fix_padding, load_model, load_trained
from helpers.paths import BASE_MODEL_DIR


def test_embedded_gguf_ships_in_the_wheel():
    path = embedded_gguf()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert path.stat().st_size > 50 * 2**20


def test_gguf_to_safetensors_round_trip(tmp_path):
    """The converted directory loads as a plain model and computes what the GGUF model computes."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = convert_gguf(embedded_gguf(), tmp_path / "base")
    names = {p.name for p in out.iterdir()}
    assert "model.safetensors" in names and "tokenizer.json" in names
    assert not [n for n in names if n.endswith((".bin", ".pt", ".pth"))]
    assert not (tmp_path / "base.partial").exists()

    gguf = embedded_gguf()
    reference = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name).eval()
    converted = AutoModelForCausalLM.from_pretrained(out).eval()
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert "quantization_config" not in converted.config.to_dict()
    inputs = tokenizer("My lower back has been aching since yesterday.", return_tensors="pt")
    with torch.no_grad():
        torch.testing.assert_close(converted(**inputs).logits, reference(**inputs).logits)
    assert tokenizer.chat_template and "<|im_start|>" in tokenizer.chat_template


def test_the_cache_is_built_once_and_reused():
    first = base_model_dir(EMBEDDED_MODEL)
    stamp = (BASE_MODEL_DIR / "model.safetensors").stat().st_mtime_ns
    assert base_model_dir(EMBEDDED_MODEL) == first
    assert (BASE_MODEL_DIR / "model.safetensors").stat().st_mtime_ns == stamp


def test_loaded_tokenizer_pads_with_a_token_that_is_not_eos(base):
    _, tokenizer = base
    assert tokenizer.pad_token_id != tokenizer.eos_token_id
    assert tokenizer.eos_token == "<|im_end|>"


def test_fix_padding_replaces_eos_padding():
    class Tok:
        eos_token_id = 2
        pad_token = "<|im_end|>"
        pad_token_id = 2

        def get_vocab(self):
            return {"<|endoftext|>": 0, "<|im_end|>": 2}

    tok = fix_padding(Tok())
    assert tok.pad_token == "<|endoftext|>"


def test_hub_id_while_offline_is_a_one_line_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CourseError) as info:
        load_model("HuggingFaceTB/not-a-cached-model-xyz")
    message = str(info.value)
    assert "HuggingFaceTB/not-a-cached-model-xyz" in message and "offline" in message
    assert "\n" not in message


def test_missing_local_model_directory_is_named(tmp_path):
    with pytest.raises(CourseError, match="does not exist"):
        load_trained(tmp_path / "nowhere")


def test_directory_without_a_model_is_explained(tmp_path):
    with pytest.raises(CourseError, match="neither a model"):
        load_trained(tmp_path)


def test_quantized_loading_shrinks_the_footprint(base):
    from helpers.models import memory_footprint_mb

    model, _ = base
    q4, _ = load_model(quantization="4bit")
    assert memory_footprint_mb(q4) < 0.5 * memory_footprint_mb(model)
    with pytest.raises(CourseError, match="unknown quantization"):
        load_model(quantization="3bit")
