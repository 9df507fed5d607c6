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


def test_an_adapter_config_without_its_base_is_refused_before_anything_loads(tmp_path):
    (tmp_path / "adapter_config.json").write_text('{"peft_type": "LORA", "r": 4}')
    (tmp_path / "adapter_model.safetensors").write_bytes(b"not read")
    with pytest.raises(CourseError, match="adapter_config.json: no 'base_model_name_or_path'"):
        load_trained(tmp_path)
    (tmp_path / "adapter_config.json").write_text('{"peft_type": "LORA", "base_model_name_or_path": null}')
    with pytest.raises(CourseError, match="no 'base_model_name_or_path'"):
        load_trained(tmp_path)
    (tmp_path / "adapter_config.json").write_text('{"peft_type": "LORA",')
    with pytest.raises(CourseError, match="adapter_config.json: cannot be read as JSON"):
        load_trained(tmp_path)


@pytest.mark.parametrize("weights, reason", ids=["missing", "corrupt"], argvalues=[
    (None, "has a config.json but no model.safetensors"),
    (b"\x00" * 64, r"does not load as a model \(SafetensorError"),
])
def test_a_model_folder_with_missing_or_corrupt_weights_is_one_line(tmp_path, weights, reason):
    import shutil

    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy(BASE_MODEL_DIR / name, tmp_path / name)
    if weights is not None:
        (tmp_path / "model.safetensors").write_bytes(weights)
    with pytest.raises(CourseError, match=reason) as info:
        load_trained(tmp_path)
    assert "\n" not in str(info.value) and str(tmp_path) not in str(info.value)


def test_each_training_process_loads_onto_its_own_gpu(monkeypatch):
    """Under accelerate, the process of local rank 1 loads onto cuda:1, quantized or not (no GPU here: the placement
    the loader asks for is checked, not a GPU's memory)."""
    import helpers.models
    from transformers import AutoModelForCausalLM

    asked = []

    class Stop(Exception):
        pass

    def from_pretrained(source, **kwargs):
        asked.append(kwargs.get("device_map"))
        raise Stop

    monkeypatch.setattr(helpers.models, "process_gpu", lambda: 1)
    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", from_pretrained)
    for quantization in ("4bit", "8bit"):
        with pytest.raises(Stop):
            load_model(quantization=quantization, device="cuda")
    assert asked == [{"": "cuda:1"}, {"": "cuda:1"}]


def test_a_single_process_works_on_gpu_0():
    from helpers.models import process_gpu

    assert process_gpu() == 0
