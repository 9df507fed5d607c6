"""Chapter 2: what 8-bit and 4-bit quantization do to a real weight matrix, computed with bitsandbytes itself.

* **LLM.int8** stores each row of a weight matrix as 8-bit integers with one
  float scale per row (the row's largest absolute value maps to 127). At run
  time, the few *input features* whose activations exceed a threshold (6.0)
  are multiplied in 16 bits instead, because one huge outlier would otherwise
  crush every other value of its row onto a handful of integer levels.
* **NF4** (4-bit NormalFloat, the QLoRA paper's data type) stores blocks of 64
  weights as 4-bit indices into 16 fixed levels, with one scale per block.
  The levels are quantiles of a normal distribution, so they are dense where
  trained weights are dense (near zero) and sparse in the tails. **Double
  quantization** then stores the per-block scales themselves in 8 bits.

The functions below run the same bitsandbytes routines that loading with
``BitsAndBytesConfig`` runs, on one matrix, and return what the chapter plots.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

#: LLM.int8's default outlier threshold (``BitsAndBytesConfig(llm_int8_threshold=6.0)``)
INT8_THRESHOLD = 6.0
NF4_BLOCK = 64


@dataclass
class Quantized:
    name: str
    bits_per_weight: float
    restored: torch.Tensor  # the weight as the quantized model computes with it

    def error(self, weight: torch.Tensor) -> torch.Tensor:
        return (self.restored - weight).flatten()


def int8_rowwise(weight: torch.Tensor) -> Quantized:
    """LLM.int8's weight storage: int8 per row with a float32 scale per row."""
    import bitsandbytes.functional as F

    w = weight.detach().float().contiguous()
    q, scales, _ = F.int8_vectorwise_quant(w)
    restored = F.int8_vectorwise_dequant(q, scales)
    return Quantized("LLM.int8 (8-bit rows)", 8 + 32 / w.shape[1], restored)


def nf4(weight: torch.Tensor, double_quant: bool = True) -> Quantized:
    """NF4 in blocks of 64, optionally with double quantization of the block scales (QLoRA's base)."""
    import bitsandbytes.functional as F

    w = weight.detach().float().contiguous()
    packed, state = F.quantize_4bit(w, blocksize=NF4_BLOCK, compress_statistics=double_quant, quant_type="nf4")
    restored = F.dequantize_4bit(packed, state, quant_type="nf4")
    # one scale per block: 32 bits, or 8 bits plus a 32-bit scale per 256 blocks when the scales are quantized too
    scale_bits = (8 + 32 / 256) if double_quant else 32
    return Quantized("NF4" + (" + double quant" if double_quant else ""), 4 + scale_bits / NF4_BLOCK, restored)


def nf4_levels() -> torch.Tensor:
    """NF4's 16 values (on [-1, 1]; each block is scaled by its largest absolute weight)."""
    import bitsandbytes.functional as F

    return F.get_4bit_type("nf4", device="cpu").float()


@torch.no_grad()
def outlier_features(model, tokenizer, texts: list[str], threshold: float = INT8_THRESHOLD) -> dict:
    """How many input features of the model's linear layers exceed LLM.int8's threshold on real text.

    LLM.int8 multiplies those feature columns in 16 bits and the rest in 8.
    Returns the share of (layer, feature) pairs that ever exceed it, and the
    largest activation seen, for the layers' inputs on ``texts``.
    """
    seen: dict[str, torch.Tensor] = {}
    hooks = []
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and "lm_head" not in name:
            def keep(mod, args, out, name=name):
                peak = args[0].detach().abs().float().amax(dim=tuple(range(args[0].dim() - 1)))
                seen[name] = torch.maximum(seen[name], peak) if name in seen else peak
            hooks.append(module.register_forward_hook(keep))
    try:
        enc = tokenizer(texts, return_tensors="pt", padding=True).to(model.device)
        model(**enc)
    finally:
        for hook in hooks:
            hook.remove()
    features = torch.cat(list(seen.values()))
    return {"layers": len(seen), "features": int(features.numel()),
            "outlier_features": int((features > threshold).sum()),
            "outlier_share": float((features > threshold).float().mean()),
            "largest_activation": float(features.max())}
