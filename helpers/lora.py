"""Chapter 3: attach LoRA adapters and count what is trained.

LoRA freezes the pretrained weight W and learns a low-rank update
``W + (alpha / r) * B @ A`` with A (r x d) and B (d x r). Only A and B train,
so the optimizer state shrinks by orders of magnitude and the adapter file is
a few MB. ``r`` sets the capacity of the update, ``alpha / r`` its scale, and
``target_modules`` where it is applied.
"""
from __future__ import annotations

from dataclasses import dataclass

ATTENTION = ["q_proj", "k_proj", "v_proj", "o_proj"]
MLP = ["gate_proj", "up_proj", "down_proj"]
# Named lists rather than PEFT's "all-linear" shortcut: PEFT only accepts
# ``layers_to_transform`` with explicit module names (and lm_head stays frozen either way).
TARGETS = {"attention": ATTENTION, "all-linear": ATTENTION + MLP}


def lora_config(r: int = 16, alpha: int = 32, targets: str = "attention", dropout: float = 0.05,
                top_layers: int | None = None, num_layers: int | None = None):
    """LoRA settings; ``top_layers`` restricts the adapters to the last N of ``num_layers`` blocks.

    Adapting only the top blocks is a speed lever on CPU: the backward pass
    stops at the lowest adapted block, so the frozen blocks below only run
    forward.
    """
    from peft import LoraConfig

    if targets not in TARGETS:
        raise ValueError(f"targets must be one of {', '.join(TARGETS)}, not {targets!r}")
    layers = None
    if top_layers is not None:
        if num_layers is None:
            raise ValueError("top_layers needs num_layers (model.config.num_hidden_layers)")
        layers = list(range(max(0, num_layers - top_layers), num_layers))
    return LoraConfig(
        r=r, lora_alpha=alpha, target_modules=TARGETS[targets], lora_dropout=dropout,
        bias="none", task_type="CAUSAL_LM", layers_to_transform=layers,
    )


@dataclass
class ParamCount:
    trainable: int
    total: int

    @property
    def percent(self) -> float:
        return 100 * self.trainable / self.total

    def __str__(self) -> str:
        return f"trainable {self.trainable:,} of {self.total:,} parameters ({self.percent:.2f} %)"


def count_parameters(model) -> ParamCount:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return ParamCount(trainable, total)


def lora_modules(model) -> list[str]:
    """Names of the modules that received a LoRA adapter, e.g. ``layers.0.self_attn.q_proj``."""
    return [name.removeprefix("base_model.model.model.") for name, module in model.named_modules()
            if hasattr(module, "lora_A") and len(getattr(module, "lora_A")) > 0]
