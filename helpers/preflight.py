"""A memory pre-flight: the peak memory of a training run, estimated from the model's config before any weight loads.

    python -m helpers.preflight --model embedded --quantization 4bit --batch-size 16 --seq-len 160 [--device cuda]
    python -m helpers.preflight --profile colab-t4 --free-gib 15

A run that dies of memory at its first step, or kills the notebook's kernel,
costs a learner the load and a confusing message. :func:`estimate` adds up,
in bytes, what a run of the course's training path holds at its peak (the
first backward pass of the longest batch):

* **weights**, from a meta-device model built from the config
  (``accelerate.init_empty_weights``: no weight is read), sized by accelerate
  at the dtype or, on a quantized base, at 4 or 8 bits for the layers
  bitsandbytes quantizes, plus its scales;
* **LoRA parameters**, counted exactly from the shapes of the targeted layers;
* **gradients** and **optimizer state** (AdamW: two float32 moments per
  trainable parameter), trainable weights in float32 (see below);
* **activations** kept for the backward pass (:func:`activation_bytes` gives
  the formula) and the **logits** of the loss, which TRL computes in tiles
  over the labelled positions only;
* on CPU, the **process baseline** (Python and the libraries, the tokenizer
  and datasets: measured, see ``IMPORTS_RSS``), the **checkpoint pages** a
  quantized model keeps mapped (:func:`checkpoint_pages`) and the **allocator
  overhead** of glibc's heap (measured, see ``HEAP_OVERHEAD``).

:func:`verdict` turns an estimate and the free memory (:func:`free_memory`)
into one line. ``tests/test_preflight.py`` trains the embedded model for a few
steps in a fresh process and holds the estimate to 25 % of the measured peak
resident memory.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from helpers.config import EMBEDDED_MODEL, PROFILES, memory_limit_bytes
from helpers.errors import CourseError, run_cli
from helpers.paths import ROOT

GIB = 2**30
MIB = 2**20

# --- Measured constants (2-core x86-64, 24 GiB, torch 2.13.0+cpu, transformers 5.23.0, trl 1.16.0, 2026-12-02) ---
#: Peak resident memory of a Python process that has imported torch, transformers, trl, peft, datasets and
#: accelerate, with the model and trainer classes (518.4 and 518.8 MiB in two runs).
IMPORTS_RSS = 518 * MIB
#: What a course training process adds before its first step, weights apart: the tokenizer, the curated splits
#: and their tokenized datasets, TRL's trainer and accelerate's state (RSS just before step 1 less IMPORTS_RSS and
#: the resident weights; 726-727 MiB before the first step of the ``ci`` profile's top-10-block runs).
TRAINER_SETUP_RSS = 209 * MIB
#: glibc's heap keeps freed blocks that a later, differently sized tensor cannot reuse, so a CPU process's peak
#: resident memory runs above what its tensors hold at once. This is that excess per byte freed and reallocated within
#: a step (activations and logits): the mean over 12 measured runs of the embedded model (float32 and 4-bit base, top
#: 10 or all blocks, batch 2 to 16; ``python -m helpers.preflight --calibrate`` measures such runs). Single runs range
#: from -0.11 to 0.66, and the same run measured three times peaked at 1,849, 1,877 and 2,131 MiB, so one run's peak
#: can sit 15 % either side of the estimate. A process started with ``MALLOC_MMAP_THRESHOLD_=131072`` hands every
#: freed tensor over 128 KiB back to the system and keeps almost none of this.
HEAP_OVERHEAD = 0.34

#: Published architectures of the Hub models the GPU profiles train, for estimates offline (``config.json`` of each
#: model on the Hugging Face Hub). SmolLM2-360M-Instruct is a fine-tune of SmolLM2-360M and keeps its shapes.
PUBLISHED = {
    # huggingface.co/HuggingFaceTB/SmolLM2-360M/blob/3ce05f63c246c44616da500b47b01f082f4d3bcc/config.json
    "HuggingFaceTB/SmolLM2-360M-Instruct": dict(
        hidden_size=960, intermediate_size=2560, num_hidden_layers=32, num_attention_heads=15,
        num_key_value_heads=5, vocab_size=49152, tie_word_embeddings=True, torch_dtype="bfloat16"),
    # huggingface.co/HuggingFaceTB/SmolLM2-1.7B-Instruct/blob/dfc017ec3d4e0eaed394f8bf2a0fd2ff24f8b2cd/config.json
    "HuggingFaceTB/SmolLM2-1.7B-Instruct": dict(
        hidden_size=2048, intermediate_size=8192, num_hidden_layers=24, num_attention_heads=32,
        num_key_value_heads=32, vocab_size=49152, tie_word_embeddings=True, torch_dtype="bfloat16"),
}

# TRL's fused LM head (trl.trainer.utils.add_fused_lm_head) projects at most this many positions onto this many
# vocabulary entries at a time (trl 1.16: TOKEN_CHUNK_SIZE, _CHUNKED_LOGPROB_CHUNK_SIZE).
LOGIT_TILE_TOKENS = 4096
LOGIT_TILE_VOCAB = 32768
# Tiles alive at once in the backward of that head: on CPU its torch fallback (_backward_tile) holds the projected
# tile and eight same-sized temporaries (scaled logits, log-probabilities, probabilities, gradient and the products
# that build it); on CUDA the Triton kernel works in place on the one tile.
LOGIT_TILES_ALIVE = {"cpu": 9, "cuda": 1}
# bitsandbytes NF4 with double quantization: one uint8 scale per 64 weights, one float32 scale per 256 of those.
NF4_BLOCK = 64
NF4_NESTED_BLOCK = 256

DTYPES = {"float32": 4, "float16": 2, "bfloat16": 2}
QUANTIZATIONS = (None, "8bit", "4bit")
METHODS = ("lora", "full")
OPTIMIZERS = {"adamw": 8, "sgd": 0}  # bytes of state per trainable parameter (two float32 moments; none)
ATTENTION = ("sdpa", "eager")


@dataclass(frozen=True)
class Architecture:
    """The shapes of a decoder-only transformer with a gated MLP (Llama, Mistral, Qwen2, SmolLM2 ...)."""

    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    vocab_size: int
    tied_embeddings: bool

    @classmethod
    def from_config(cls, config) -> Architecture:
        config = config.get_text_config() if hasattr(config, "get_text_config") else config
        try:
            heads = config.num_attention_heads
            return cls(
                hidden_size=config.hidden_size, intermediate_size=config.intermediate_size,
                num_layers=config.num_hidden_layers, num_heads=heads,
                num_kv_heads=getattr(config, "num_key_value_heads", None) or heads,
                head_dim=getattr(config, "head_dim", None) or config.hidden_size // heads,
                vocab_size=config.vocab_size, tied_embeddings=bool(getattr(config, "tie_word_embeddings", False)))
        except AttributeError as exc:
            raise CourseError(f"the config of model type {getattr(config, 'model_type', '?')!r} has no "
                              f"{exc.name!r}: the pre-flight knows decoder-only models with a gated MLP") from None


@dataclass(frozen=True)
class Estimate:
    """The parts of a run's peak memory, in bytes, and what was estimated."""

    model: str
    architecture: Architecture
    settings: dict
    parts: dict[str, int]
    trainable_parameters: int
    total_parameters: int
    notes: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.parts.values())

    def table(self) -> str:
        """The parts as an aligned text table, in MiB and as a share of the total."""
        width = max(len(name) for name in [*self.parts, "total"])
        lines = [f"{'part':<{width}}  {'MiB':>9}  {'share':>6}"]
        for name, size in self.parts.items():
            lines.append(f"{name:<{width}}  {size / MIB:>9,.1f}  {100 * size / self.total:>5.1f}%")
        lines.append(f"{'total':<{width}}  {self.total / MIB:>9,.1f}  {100.0:>5.1f}%")
        return "\n".join(lines)

    def describe(self) -> dict:
        return {"model": self.model, "settings": self.settings, "parts_bytes": self.parts, "total_bytes": self.total,
                "trainable_parameters": self.trainable_parameters, "total_parameters": self.total_parameters,
                "architecture": dataclasses.asdict(self.architecture), "notes": self.notes}


# --- the model's config, without its weights ---

def load_config(model_id_or_config):
    """A transformers config for ``model_id_or_config``: a config object, ``embedded``, a published Hub id, a
    local model directory, or (online) any Hub id. Never reads a weight."""
    if not isinstance(model_id_or_config, str):
        return model_id_or_config
    from transformers import AutoConfig, LlamaConfig

    model_id = EMBEDDED_MODEL if model_id_or_config in ("embedded", EMBEDDED_MODEL) else model_id_or_config
    if model_id == EMBEDDED_MODEL:
        from helpers.models import embedded_gguf
        from helpers.paths import BASE_MODEL_DIR

        if (BASE_MODEL_DIR / "config.json").is_file():
            return AutoConfig.from_pretrained(BASE_MODEL_DIR)
        gguf = embedded_gguf()  # reads the GGUF's metadata only
        return AutoConfig.from_pretrained(gguf.parent, gguf_file=gguf.name)
    if model_id in PUBLISHED:
        return LlamaConfig(**PUBLISHED[model_id])
    path = Path(model_id).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise CourseError(f"'{model_id}' has no config.json: not a model directory")
        return AutoConfig.from_pretrained(path)
    try:
        return AutoConfig.from_pretrained(model_id)
    except OSError:
        raise CourseError(f"no config for '{model_id}': not a local model directory, not one of the published "
                          f"architectures known offline ({', '.join(PUBLISHED)}), and the Hub is unreachable") from None


def meta_model(config):
    """The model with every tensor on the meta device: shapes and dtypes, no memory."""
    from accelerate import init_empty_weights
    from transformers import AutoModelForCausalLM

    with init_empty_weights():
        model = AutoModelForCausalLM.from_config(config)
    if Architecture.from_config(config).tied_embeddings:
        model.tie_weights()
    return model


def _linear_layers(model) -> dict[str, tuple[int, int]]:
    """(in_features, out_features) of every ``nn.Linear`` by module name."""
    import torch

    return {name: (module.in_features, module.out_features) for name, module in model.named_modules()
            if isinstance(module, torch.nn.Linear)}


def _quantized_linears(model) -> dict[str, tuple[int, int]]:
    """The linear layers bitsandbytes quantizes: all but those transformers keeps (output head, tied weights)."""
    from transformers.quantizers.base import get_keys_to_not_convert

    keep = set(get_keys_to_not_convert(model))
    return {name: shape for name, shape in _linear_layers(model).items()
            if not any(name == k or name.startswith(k + ".") for k in keep)}


def _block_index(name: str) -> int | None:
    """The decoder block a module belongs to (``model.layers.7.mlp.up_proj`` -> 7)."""
    parts = name.split(".")
    for before, part in zip(parts, parts[1:]):
        if before in ("layers", "h", "blocks") and part.isdigit():
            return int(part)
    return None


def weight_bytes(model, dtype: str, quantization: str | None) -> int:
    """The weights' bytes as loaded: accelerate's sizes at ``dtype``; on a quantized base, bitsandbytes' 4 or 8 bits
    for every linear layer it quantizes (transformers leaves the output head and tied weights alone) plus its
    scales, and the rest in float32 (``peft.prepare_model_for_kbit_training`` casts them)."""
    import torch
    from accelerate.utils import CustomDtype, compute_module_sizes

    if quantization is None:
        return int(compute_module_sizes(model, dtype=getattr(torch, dtype))[""])
    quantized = _quantized_linears(model)
    target = CustomDtype.INT4 if quantization == "4bit" else torch.int8
    special = {f"{name}.weight": target for name in quantized}
    size = compute_module_sizes(model, dtype=torch.float32, special_dtypes=special)[""]
    for n_in, n_out in quantized.values():
        if quantization == "4bit":
            blocks = math.ceil(n_in * n_out / NF4_BLOCK)
            size += blocks + 4 * math.ceil(blocks / NF4_NESTED_BLOCK)
        else:
            size += 4 * n_out  # LLM.int8: one float32 scale per output row
    return int(size)


def checkpoint_pages(model, config, quantization: str | None) -> int:
    """On CPU, the checkpoint's pages that a quantized model keeps resident: bytes of the quantized layers as stored.

    transformers maps the safetensors file and, where a tensor keeps the
    file's dtype (the float32 embedding of the converted SmolLM2), uses it in
    place, so the mapping stays open for the model's life; every page read
    while quantizing stays in the resident set until the kernel needs the
    memory back (the pages are clean and file-backed, so it can drop them).
    """
    if quantization is None:
        return 0
    stored = str(getattr(config, "dtype", None) or getattr(config, "torch_dtype", None) or "float32")
    per_weight = DTYPES.get(stored.replace("torch.", ""), 4)
    return sum(per_weight * n_in * n_out for n_in, n_out in _quantized_linears(model).values())


def lora_targets_for(targets) -> tuple[str, ...]:
    """Module names LoRA adapts: ``"attention"``, ``"all-linear"`` (as in :mod:`helpers.lora`) or a list of names."""
    from helpers.lora import TARGETS

    if isinstance(targets, str):
        if targets not in TARGETS:
            raise CourseError(f"lora_targets must be one of {', '.join(TARGETS)} or a list of module names, "
                              f"not {targets!r}")
        return tuple(TARGETS[targets])
    return tuple(targets)


def adapted_layers(num_layers: int, top_layers: int | None) -> range:
    """The blocks that get adapters: the last ``top_layers`` (all when None), as :func:`helpers.lora.lora_config`."""
    if top_layers is not None and not 1 <= top_layers:
        raise CourseError(f"lora_top_layers must be at least 1, not {top_layers}")
    first = 0 if top_layers is None else max(0, num_layers - top_layers)
    return range(first, num_layers)


def lora_parameters(model, r: int, targets, top_layers: int | None) -> int:
    """LoRA's trainable parameters: r x (in + out) for every targeted linear layer of the adapted blocks."""
    names = lora_targets_for(targets)
    blocks = set(adapted_layers(Architecture.from_config(model.config).num_layers, top_layers))
    count = 0
    for name, (n_in, n_out) in _linear_layers(model).items():
        if name.rsplit(".", 1)[-1] in names and _block_index(name) in blocks:
            count += r * (n_in + n_out)
    if not count:
        raise CourseError(f"no layer of this model is named {', '.join(names)}: LoRA would train nothing")
    return count


# --- activations ---

def layer_activations(arch: Architecture, seq_len: int, adapted: tuple[str, ...] | None, r: int = 0,
                      attention: str = "sdpa", lora_dropout: float = 0.0) -> tuple[int, int]:
    """Elements one decoder block keeps for the backward pass, per token: (residual-stream elements, the others).

    Counted from what autograd saves in a Llama-style block (RMSNorm, attention,
    gated MLP) when gradients flow through it; ``adapted`` names the block's
    LoRA-adapted layers, or None for full fine-tuning. With H the hidden size,
    A = heads x head_dim, I the intermediate size, h the heads, S the sequence:

    * each RMSNorm keeps its input (2 H, the residual stream) and its 1/rms (2);
    * a frozen linear layer keeps nothing (its input gradient needs only the
      weight); a trained one keeps its input, for its weight's gradient: the
      first norm's output for q/k/v (H), the attention output for o (shared
      with the attention's own output), the second norm's output for gate/up
      (H), and the gated product for down (I); LoRA also keeps its r-wide
      middle (r per adapted layer) and, with dropout, its own dropped input and
      mask; full fine-tuning also keeps each norm's normalised input (2 H);
    * SDPA keeps q, k and v (k and v repeated to all h heads, 3 A), its output
      (A), the log-sum-exp (h) and the float mask (S); eager attention keeps q,
      k, v, the softmax probabilities (h x S) and a copy of its output (A);
    * the MLP keeps the gate's output, its SiLU and the up projection (3 I).

    The SmolLM2-135M block under LoRA r32 on every linear layer: 11,107
    elements per token, what autograd saved in a measured step (407 MiB for
    10 blocks at 8 x 120 tokens).
    """
    H, A, I, h = arch.hidden_size, arch.num_heads * arch.head_dim, arch.intermediate_size, arch.num_heads
    residual = 2 * H
    other = 2 + 3 * A + 3 * I
    other += A + h + seq_len if attention == "sdpa" else A + h * seq_len
    if adapted is None:
        other += 2 * H + H + H + I  # normalised inputs for the norms' weights; inputs of q/k/v, gate/up and down
        return residual, other
    widths = {"q_proj": H, "k_proj": H, "v_proj": H, "o_proj": A, "gate_proj": H, "up_proj": H, "down_proj": I}
    if any(n in adapted for n in ("q_proj", "k_proj", "v_proj")):
        other += H
    if any(n in adapted for n in ("gate_proj", "up_proj")):
        other += H
    if "down_proj" in adapted:
        other += I
    other += r * sum(1 for n in adapted if n in widths)
    if lora_dropout > 0:
        # a dropped copy of the input per adapted layer, and its mask (1 byte, a quarter of a float32 element)
        other += sum(widths[n] + widths[n] / 4 for n in adapted if n in widths)
    return residual, int(other)


def activation_bytes(arch: Architecture, batch_size: int, seq_len: int, trained_layers: int,
                     adapted: tuple[str, ...] | None, r: int, act_bytes: int, residual_bytes: int,
                     gradient_checkpointing: bool = False, attention: str = "sdpa",
                     lora_dropout: float = 0.0) -> int:
    """Bytes of activations at the start of the backward pass, for batch_size x seq_len tokens.

    Only the blocks gradients flow through keep anything: every block in full
    fine-tuning, the adapted blocks and those above them under LoRA (the frozen
    blocks below run forward without a graph). Each keeps
    :func:`layer_activations` per token, plus one block's worth of working
    memory for the gradients of the block being differentiated. With
    activation checkpointing a block keeps only its input (H per token) and
    recomputes the rest during the backward pass, so one block's activations
    (and its working memory) are alive at a time.
    """
    tokens = batch_size * seq_len
    residual, other = layer_activations(arch, seq_len, adapted, r, attention, lora_dropout)
    per_block = tokens * (residual * residual_bytes + other * act_bytes)
    if gradient_checkpointing:
        return trained_layers * tokens * arch.hidden_size * residual_bytes + 2 * per_block
    return (trained_layers + 1) * per_block


def logits_bytes(arch: Architecture, positions: int, device: str, act_bytes: int) -> int:
    """The loss's logits: TRL's fused head projects ``positions`` rows in tiles of at most 4,096 x 32,768 and
    never holds the whole positions x vocabulary matrix (:data:`LOGIT_TILES_ALIVE` tiles alive in its backward)."""
    tile = min(positions, LOGIT_TILE_TOKENS) * min(arch.vocab_size, LOGIT_TILE_VOCAB)
    return tile * (4 if device == "cpu" else act_bytes) * LOGIT_TILES_ALIVE[device]


# --- the estimate ---

def estimate(model_id_or_config, *, quantization: str | None = None, dtype: str = "float32", method: str = "lora",
             lora_r: int = 32, lora_targets="all-linear", lora_top_layers: int | None = None,
             lora_dropout: float = 0.0, batch_size: int = 8, seq_len: int = 160,
             labelled_positions: int | None = None, gradient_checkpointing: bool = False,
             optimizer: str = "adamw", device: str = "cpu", attention: str = "sdpa") -> Estimate:
    """The peak memory of a training run of the course's recipe, from the model's config alone (see the module).

    ``seq_len`` is the padded length of the longest batch (TRL pads each batch
    to its longest row); ``labelled_positions`` the answer tokens of that batch
    whose loss is computed (None: every position, an upper bound). Trainable
    weights are float32 (PEFT keeps adapters in float32; the course keeps them
    there on a quantized base, ``helpers.training.trainable_in_float32``); full
    fine-tuning with a half-precision ``dtype`` adds float32 master copies.
    """
    _check(quantization=quantization, dtype=dtype, method=method, optimizer=optimizer, device=device,
           attention=attention, batch_size=batch_size, seq_len=seq_len, lora_r=lora_r,
           labelled_positions=labelled_positions, lora_dropout=lora_dropout)
    config = load_config(model_id_or_config)
    arch = Architecture.from_config(config)
    model = meta_model(config)
    total_params = sum(p.numel() for p in model.parameters())
    parts: dict[str, int] = {}
    notes: list[str] = []
    if device == "cpu":
        parts["process baseline"] = IMPORTS_RSS + TRAINER_SETUP_RSS
    parts["weights"] = weight_bytes(model, dtype, quantization)
    if device == "cpu" and quantization:
        parts["checkpoint pages (file-backed)"] = checkpoint_pages(model, config, quantization)
    half = DTYPES[dtype] == 2
    if method == "full":
        trainable = total_params
        if half:
            parts["float32 master copies"] = 4 * trainable
        trained_layers, adapted = arch.num_layers, None
    else:
        trainable = lora_parameters(model, lora_r, lora_targets, lora_top_layers)
        parts["LoRA parameters"] = 4 * trainable
        blocks = adapted_layers(arch.num_layers, lora_top_layers)
        trained_layers, adapted = len(blocks), lora_targets_for(lora_targets)
    parts["gradients"] = 4 * trainable
    parts["optimizer state"] = OPTIMIZERS[optimizer] * trainable
    act_bytes = DTYPES[dtype]
    # The residual stream stays float32 where the non-trainable weights are float32 (a quantized base after
    # prepare_model_for_kbit_training, or float32 weights under autocast).
    residual_bytes = 4 if (quantization or not half) else act_bytes
    parts["activations"] = activation_bytes(
        arch, batch_size, seq_len, trained_layers, adapted, lora_r if method == "lora" else 0, act_bytes,
        residual_bytes, gradient_checkpointing, attention, lora_dropout if method == "lora" else 0.0)
    positions = batch_size * (seq_len - 1) if labelled_positions is None else labelled_positions
    parts["logits (loss)"] = logits_bytes(arch, positions, device, act_bytes)
    if device == "cpu":
        parts["allocator overhead"] = int(HEAP_OVERHEAD * (parts["activations"] + parts["logits (loss)"]))
    else:
        notes.append("counts what torch allocates (torch.cuda.max_memory_allocated); the CUDA context and the "
                     "caching allocator's reserve come on top")
    settings = {"quantization": quantization, "dtype": dtype, "method": method, "batch_size": batch_size,
                "seq_len": seq_len, "labelled_positions": positions, "gradient_checkpointing": gradient_checkpointing,
                "optimizer": optimizer, "device": device, "attention": attention}
    if method == "lora":
        settings.update(lora_r=lora_r, lora_targets=lora_targets, lora_top_layers=lora_top_layers,
                        lora_dropout=lora_dropout)
    name = model_id_or_config if isinstance(model_id_or_config, str) else config.name_or_path or "config"
    return Estimate(name, arch, settings, parts, trainable, total_params, notes)


def _check(*, quantization, dtype, method, optimizer, device, attention, batch_size, seq_len, lora_r,
           labelled_positions, lora_dropout) -> None:
    """One line naming the setting at fault and the rule, before any work."""
    choices = {"quantization": (quantization, QUANTIZATIONS), "dtype": (dtype, tuple(DTYPES)),
               "method": (method, METHODS), "optimizer": (optimizer, tuple(OPTIMIZERS)),
               "device": (device, ("cpu", "cuda")), "attention": (attention, ATTENTION)}
    for name, (value, allowed) in choices.items():
        if value not in allowed:
            raise CourseError(f"{name} must be one of {', '.join(map(str, allowed))}, not {value!r}")
    for name, value in {"batch_size": batch_size, "seq_len": seq_len, "lora_r": lora_r}.items():
        if not isinstance(value, int) or value < 1:
            raise CourseError(f"{name} must be a whole number of at least 1, not {value!r}")
    if seq_len < 2:
        raise CourseError(f"seq_len must be at least 2 (a token and the next one to predict), not {seq_len}")
    if labelled_positions is not None and not 0 <= labelled_positions <= batch_size * (seq_len - 1):
        raise CourseError(f"labelled_positions must be between 0 and batch_size x (seq_len - 1) = "
                          f"{batch_size * (seq_len - 1)}, not {labelled_positions}")
    if not 0 <= lora_dropout < 1:
        raise CourseError(f"lora_dropout must be in [0, 1), not {lora_dropout}")
    if method == "full" and quantization:
        raise CourseError("full fine-tuning cannot train a quantized base: use method='lora' (QLoRA) "
                          "or no quantization")


# --- free memory and the verdict ---

def _cgroup_usage() -> int | None:
    """Bytes the container's cgroup uses now (v2, then v1), if the kernel says."""
    for path in ("/sys/fs/cgroup/memory.current", "/sys/fs/cgroup/memory/memory.usage_in_bytes"):
        try:
            value = Path(path).read_text().strip()
        except OSError:
            continue
        if value.isdigit():
            return int(value)
    return None


def free_memory(device: str = "cpu") -> int:
    """Bytes a new run could use now: the GPU's free memory, or the machine's available memory within the
    container's limit (a cgroup or Binder's ``MEM_LIMIT``, :func:`helpers.config.memory_limit_bytes`)."""
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise CourseError("no CUDA device here: estimate for a GPU with --free-gib (a 16 GB T4 has ~15 GiB)")
        return int(torch.cuda.mem_get_info()[0])
    if device != "cpu":
        raise CourseError(f"device must be cpu or cuda, not {device!r}")
    import psutil

    available = psutil.virtual_memory().available
    limit = memory_limit_bytes()
    if limit is not None:
        used = _cgroup_usage()
        available = min(available, limit - used if used is not None else limit)
    return int(max(available, 0))


def _base(settings: dict) -> str:
    if settings["method"] == "full":
        return "full fine-tuning"
    base = {"4bit": "LoRA on a 4-bit base", "8bit": "LoRA on an 8-bit base", None: "LoRA"}[settings["quantization"]]
    return f"{base} (r{settings['lora_r']})"


def verdict(estimate: Estimate, free_bytes: int) -> str:
    """One line: does the run fit in ``free_bytes``, with the estimate and the room left (or missing).

    Within 10 % of the free memory the answer is "tight": the estimate is a
    model, and a run that needs 95 % of a GPU may still fail on what it leaves out.
    """
    s = estimate.settings
    what = (f"{estimate.model}, {_base(s)}, {s['dtype']}, batch {s['batch_size']} x {s['seq_len']} tokens "
            f"on {s['device']}")
    need, free = estimate.total / GIB, free_bytes / GIB
    if estimate.total <= 0.9 * free_bytes:
        return f"{what}: fits {free:.1f} GiB free: yes, ~{need:.1f} GiB ({free - need:.1f} GiB to spare)"
    if estimate.total <= free_bytes:
        return f"{what}: fits {free:.1f} GiB free: tight, ~{need:.1f} GiB ({free - need:.1f} GiB to spare)"
    return f"{what}: fits {free:.1f} GiB free: no, ~{need:.1f} GiB ({need - free:.1f} GiB short)"


# --- measuring a real run, to hold the estimate to ---

def measure_here(*, quantization: str | None = None, batch_size: int = 2, lora_top_layers: int | None = 10,
                 lora_targets: str = "all-linear", lora_r: int = 32, steps: int = 2, profile: str = "ci") -> dict:
    """Train ``steps`` steps of chapter 4's recipe (``profile`` with these settings) in this process.

    Returns the process's peak resident memory and, per step, the batch's
    shape and labelled positions: what :func:`estimate` needs to predict it.
    A process's peak only grows, so call this in a fresh process (:func:`measure`).
    """
    import tempfile

    from helpers.config import get_profile
    from helpers.flavours import peak_memory_mb
    from helpers.training import load_split, make_trainer, model_for_training, peft_config_for

    setup = dataclasses.replace(get_profile(profile), quantize_base=quantization, batch_size=batch_size,
                                lora_top_layers=lora_top_layers, lora_targets=lora_targets, lora_r=lora_r,
                                lora_alpha=2 * lora_r, patience=None)
    model, tokenizer = model_for_training(setup)
    batches = []
    with tempfile.TemporaryDirectory() as tmp:
        trainer = make_trainer(model, tokenizer, setup, load_split("train", setup), load_split("val", setup),
                               output_dir=Path(tmp), peft_config=peft_config_for(setup, model), max_steps=steps,
                               eval_strategy="no", save_strategy="no", disable_tqdm=True, logging_steps=steps)

        def record(module, args, kwargs):
            if module.training:
                batches.append([*kwargs["input_ids"].shape, int((kwargs["labels"][:, 1:] != -100).sum())])

        trainer.model.get_base_model().register_forward_pre_hook(record, with_kwargs=True)
        trainer.train()
    return {"peak_rss_bytes": int(peak_memory_mb("cpu")[0] * MIB), "batches": batches, "profile": profile,
            "settings": {"quantization": quantization, "dtype": setup.dtype, "batch_size": batch_size,
                         "lora_top_layers": lora_top_layers, "lora_targets": lora_targets, "lora_r": lora_r,
                         "lora_dropout": setup.lora_dropout, "steps": steps},
            "env": {k: v for k, v in os.environ.items() if k.startswith("MALLOC_")}}


def measure(env: dict | None = None, **settings) -> dict:
    """:func:`measure_here` in a fresh Python process (extra environment variables in ``env``)."""
    command = [sys.executable, "-m", "helpers.preflight", "--measure", json.dumps(settings)]
    environment = {**os.environ, **(env or {}),
                   "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True)
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-10:])
        raise RuntimeError(f"the measured run failed (exit {done.returncode}):\n{tail}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def estimate_measured(measured: dict) -> Estimate:
    """The estimate for a run :func:`measure` trained: the largest over its batches (the peak's batch)."""
    s = measured["settings"]
    return max((estimate("embedded", quantization=s["quantization"], dtype=s["dtype"], lora_r=s["lora_r"],
                         lora_targets=s["lora_targets"], lora_top_layers=s["lora_top_layers"],
                         lora_dropout=s["lora_dropout"], batch_size=b, seq_len=t, labelled_positions=n)
                for b, t, n in measured["batches"]), key=lambda e: e.total)


#: The runs :func:`calibrate` measures: the embedded model in float32 and on a 4-bit base, small to large batches,
#: LoRA on the top 10 blocks (the ``ci`` profile) and on every block (the ``cpu`` profile).
CALIBRATION_RUNS = [
    dict(quantization=None, batch_size=2, lora_top_layers=10),
    dict(quantization=None, batch_size=8, lora_top_layers=10),
    dict(quantization=None, batch_size=16, lora_top_layers=10),
    dict(quantization=None, batch_size=2, lora_top_layers=None),
    dict(quantization=None, batch_size=8, lora_top_layers=None),
    dict(quantization="4bit", batch_size=2, lora_top_layers=10),
    dict(quantization="4bit", batch_size=8, lora_top_layers=10),
    dict(quantization="4bit", batch_size=8, lora_top_layers=None),
]


def calibrate(runs: list[dict] = CALIBRATION_RUNS, steps: int = 2, out: Path | None = None) -> dict:
    """Measure each run in a fresh process, set it beside the estimate, and fit :data:`HEAP_OVERHEAD`.

    The fitted ratio is the mean, over the runs, of what the peak holds beyond
    the estimate's other parts, per byte of activations and logits.
    """
    from helpers.atomic import write_json
    from helpers.paths import OUTPUTS
    from helpers.speed import cpu

    rows = []
    for settings in runs:
        measured = measure(**settings, steps=steps)
        guess = estimate_measured(measured)
        churn = guess.parts["activations"] + guess.parts["logits (loss)"]
        rest = guess.total - guess.parts["allocator overhead"]
        rows.append({**settings, "batches": measured["batches"],
                     "peak_rss_mib": round(measured["peak_rss_bytes"] / MIB),
                     "estimate_mib": round(guess.total / MIB),
                     "error_percent": round(100 * (guess.total / measured["peak_rss_bytes"] - 1), 1),
                     "overhead_ratio": round((measured["peak_rss_bytes"] - rest) / churn, 3)})
        print(json.dumps(rows[-1]), flush=True)
    import torch
    import transformers
    import trl

    report = {"machine": cpu(), "torch": torch.__version__, "transformers": transformers.__version__,
              "trl": trl.__version__, "steps": steps, "heap_overhead_in_use": HEAP_OVERHEAD,
              "heap_overhead_fitted": round(sum(r["overhead_ratio"] for r in rows) / len(rows), 3), "runs": rows}
    write_json(out or OUTPUTS / "preflight-calibration.json", report)
    return report


# --- command line ---

class _Parser(argparse.ArgumentParser):
    """argparse whose complaints are the course's one-line errors."""

    def error(self, message: str):
        raise CourseError(message)


def _top_layers(text: str | None, profile) -> int | None:
    """``--lora-top-layers``: a number of blocks, ``all``, or (absent) the profile's setting."""
    if text is None:
        return profile.lora_top_layers if profile else None
    if text == "all":
        return None
    if not text.isdigit() or int(text) < 1:
        raise CourseError(f"--lora-top-layers takes a whole number of at least 1 or 'all', not {text!r}")
    return int(text)


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="python -m helpers.preflight", description=__doc__.split("\n")[0])
    parser.add_argument("--profile", choices=list(PROFILES), help="take the model and recipe from a course profile")
    parser.add_argument("--model", help="'embedded', a Hub id or a model directory (default: the profile's)")
    parser.add_argument("--quantization", choices=["none", "8bit", "4bit"])
    parser.add_argument("--dtype", choices=list(DTYPES))
    parser.add_argument("--method", choices=list(METHODS), default="lora")
    parser.add_argument("--lora-r", type=int)
    parser.add_argument("--lora-targets", choices=["attention", "all-linear"])
    parser.add_argument("--lora-top-layers", help="adapt only the last N blocks ('all': every one)")
    parser.add_argument("--lora-dropout", type=float)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--seq-len", type=int, default=160, help="padded tokens per row of the longest batch "
                        "(default 160, the course's max_length)")
    parser.add_argument("--labelled-positions", type=int, help="answer tokens scored in that batch (default: all)")
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--optimizer", choices=list(OPTIMIZERS), default="adamw")
    parser.add_argument("--device", choices=["cpu", "cuda"])
    parser.add_argument("--attention", choices=list(ATTENTION), default="sdpa")
    parser.add_argument("--free-gib", type=float, help="judge against this much free memory instead of measuring it")
    parser.add_argument("--json", action="store_true", help="print the estimate as JSON after the table")
    parser.add_argument("--calibrate", action="store_true", help="measure the embedded model's training runs "
                        "(CALIBRATION_RUNS, each in a fresh process) against the estimate")
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # a child run of measure()
    args = parser.parse_args(argv)
    if args.measure is not None:
        print(json.dumps(measure_here(**json.loads(args.measure))))
        return 0
    if args.calibrate:
        report = calibrate()
        print(f"heap overhead: fitted {report['heap_overhead_fitted']}, in use {report['heap_overhead_in_use']}")
        return 0

    from helpers.config import get_profile

    profile = get_profile(args.profile) if args.profile else None
    pick = lambda value, attribute, default: (value if value is not None  # noqa: E731
                                              else getattr(profile, attribute) if profile else default)
    quantization = pick(args.quantization, "quantize_base", None)
    device = pick(args.device, "device", "cpu")
    result = estimate(
        pick(args.model, "model_id", "embedded"),
        quantization=None if quantization == "none" else quantization,
        dtype=pick(args.dtype, "dtype", "float32"), method=args.method,
        lora_r=pick(args.lora_r, "lora_r", 32), lora_targets=pick(args.lora_targets, "lora_targets", "all-linear"),
        lora_top_layers=_top_layers(args.lora_top_layers, profile),
        lora_dropout=pick(args.lora_dropout, "lora_dropout", 0.0), batch_size=pick(args.batch_size, "batch_size", 8),
        seq_len=args.seq_len, labelled_positions=args.labelled_positions,
        gradient_checkpointing=args.gradient_checkpointing, optimizer=args.optimizer, device=device,
        attention=args.attention)
    if args.free_gib is not None and args.free_gib <= 0:
        raise CourseError(f"--free-gib must be positive, not {args.free_gib}")
    free = int(args.free_gib * GIB) if args.free_gib is not None else free_memory(device)
    print(result.table())
    for note in result.notes:
        print(f"note: {note}")
    if args.json:
        print(json.dumps(result.describe()))
    print(verdict(result, free))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
