"""Transfer learning and forgetting control on top of any formers model; nothing in the core imports it.

freeze.py: freezing, layer groups, gradual unfreezing, layer-wise LR and head warmup.
lora.py: LoRA adapters (fused qkv aware), merge/unmerge, adapters saved alone.
ewc.py: EWC and L2-SP penalties, composed with any objective.
rehearsal.py: replaying original-task batches. pretraining.py: domain-adaptive continued pretraining.
data.py: seeded batch sources for labelled texts, pairs and masked in-domain text.
"""

from formers.adapt.data import fixed_batches, labelled_batches, masked_text_batches, padded, pair_batches
from formers.adapt.ewc import EWC, L2SP, fisher_diagonal, objective_with_penalty
from formers.adapt.freeze import (
    GradualUnfreezing,
    count_parameters,
    freeze,
    group_warmup,
    layer_groups,
    layerwise_lr,
    unfreeze,
)
from formers.adapt.lora import (
    LoRALinear,
    apply_lora,
    load_lora,
    lora_layers,
    merge_lora,
    save_lora,
    strip_lora,
    unmerge_lora,
)
from formers.adapt.pretraining import continue_pretraining
from formers.adapt.rehearsal import REPLAY, Rehearsal, with_rehearsal

__all__ = [
    "EWC", "L2SP", "REPLAY", "GradualUnfreezing", "LoRALinear", "Rehearsal", "apply_lora", "continue_pretraining",
    "count_parameters", "fisher_diagonal", "fixed_batches", "freeze", "group_warmup", "labelled_batches",
    "layer_groups", "layerwise_lr", "load_lora", "lora_layers", "masked_text_batches", "merge_lora",
    "objective_with_penalty", "padded", "pair_batches", "save_lora", "strip_lora", "unfreeze",
    "unmerge_lora", "with_rehearsal",
]
