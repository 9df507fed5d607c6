"""GGUF export: llama.cpp's own converter, from the pinned source archive, on a small Llama with the course's tokenizer.

The converter runs for real (it is a Python script); llama.cpp itself is compiled only by ``make export-gguf``, so
the test that reads the file back through llama.cpp runs where that has been done.
"""
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from helpers import gguf_export
from helpers.errors import CourseError
from tests.conftest import run_module

HAS_LLAMA_CPP = importlib.util.find_spec("llama_cpp") is not None


@pytest.fixture(scope="module")
def small_llama(tokenizer, tmp_path_factory):
    """Two blocks of SmolLM2's shape family with random weights, saved with the course's tokenizer."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                         tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    folder = tmp_path_factory.mktemp("small-llama")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder, model


@pytest.fixture(scope="module")
def converted(small_llama, tmp_path_factory):
    folder, _ = small_llama
    out = tmp_path_factory.mktemp("gguf") / "small-f16.gguf"
    return gguf_export.convert(folder, out, "f16")


def test_the_converter_comes_from_the_pinned_source_archive():
    source = gguf_export.converter_source()
    assert gguf_export.pinned_version() == "0.3.36"
    assert source.name.endswith("-0.3.36")
    for part in ("convert_hf_to_gguf.py", "conversion/llama.py", "gguf-py/gguf/gguf_reader.py"):
        assert (source / part).is_file(), part
    assert not [p for p in source.rglob("*") if p.is_symlink()]


def test_the_gguf_holds_the_weights_the_tokens_and_the_chat_template(converted, small_llama, tokenizer):
    from gguf import GGUFReader

    _, model = small_llama
    meta = gguf_export.gguf_metadata(converted)
    assert meta["architecture"] == "llama"
    assert meta["tensors"] == 2 + 2 * 9  # embeddings (tied to the output), final norm; 9 tensors a block
    assert meta["chat_template"] == tokenizer.chat_template
    assert meta["eos_token_id"] == tokenizer.eos_token_id
    assert meta["padding_token_id"] == tokenizer.pad_token_id
    tensors = {t.name: t for t in GGUFReader(str(converted)).tensors}
    embedding = np.asarray(tensors["token_embd.weight"].data)
    assert embedding.dtype == np.float16
    expected = model.model.embed_tokens.weight.detach().half().numpy()
    assert np.array_equal(embedding.reshape(expected.shape), expected)  # f16 holds the weights, rounded once
    assert not list(converted.parent.glob("*.partial"))


def test_a_failed_conversion_is_one_line_and_leaves_no_file(tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text('{"architectures": ["NoSuchModel"]}')
    out = tmp_path / "out" / "model-f16.gguf"
    with pytest.raises(CourseError, match="convert_hf_to_gguf.py on .* failed") as failure:
        gguf_export.convert(tmp_path / "model", out, "f16")
    assert "\n" not in str(failure.value)
    assert not out.exists() and not list(out.parent.glob("*"))
    with pytest.raises(CourseError, match="not q4_0"):
        gguf_export.convert(tmp_path / "model", out, "q4_0")


def test_the_command_refuses_bad_arguments_in_one_line(tmp_path):
    for args, message in ((["--model", str(tmp_path / "missing")], "missing"),
                          (["--types", "q9"], "invalid choice"),
                          (["--limit", "0"], "--limit")):
        done = run_module("helpers.gguf_export", *args, timeout=120)
        assert done.returncode == 2, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], done.stderr
        assert "Traceback" not in done.stderr
    if not HAS_LLAMA_CPP:
        done = run_module("helpers.gguf_export", "--model", str(tmp_path), timeout=120)
        assert done.returncode == 2 and done.stderr.strip() == (
            "error: llama-cpp-python is not installed: `make export-gguf` installs it "
            "(requirements-gguf.txt; pip compiles llama.cpp, a few minutes)"), done.stderr


@pytest.mark.skipif(not HAS_LLAMA_CPP, reason="llama-cpp-python is compiled by `make export-gguf` only")
def test_llama_cpp_reads_the_file_and_tokenizes_prompts_as_transformers_does(converted, tokenizer, tmp_path):
    from helpers.chat import prompt_messages

    prompts = [tokenizer.apply_chat_template(prompt_messages(text), tokenize=False, add_generation_prompt=True)
               for text in ("My lower back has been aching since yesterday.", "Squits all week, not fun.")]
    expected = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    assert gguf_export.llama_tokens(converted, prompts) == expected
    quantized = gguf_export.quantize(converted, tmp_path / "small-q4_k_m.gguf")
    assert 0 < quantized.stat().st_size < converted.stat().st_size
    answers, _ = gguf_export.llama_answers(quantized, prompts, max_tokens=4, threads=1)
    assert len(answers) == 2 and all(isinstance(a, str) for a in answers)
