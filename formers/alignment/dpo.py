"""Direct Preference Optimization (Rafailov et al. 2023) and its reference-free variant.

DPO trains the policy on preference pairs directly, with the reward implied by the policy
itself: r(x, y) = beta * log(pi(y|x) / pi_ref(y|x)). The Bradley-Terry likelihood of the
pairs under that reward is

    loss = -log sigmoid(beta * [(log pi(y_w) - log pi_ref(y_w)) - (log pi(y_l) - log pi_ref(y_l))])

with y_w chosen, y_l rejected, and log-probabilities summed over response tokens. The
reference-free variant drops the pi_ref terms (the reference becomes uniform), as in the
`reference_free` option of Hugging Face TRL; conservative DPO (Mitchell 2023) smooths the
labels for pairs that may be mislabelled.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn
from torch.nn import functional as F

from formers.alignment.sequences import sequence_logprobs
from formers.config import Config, check
from formers.errors import ConfigError


@dataclasses.dataclass(kw_only=True)
class DPOConfig(Config):
    beta: float = 0.1  # inverse temperature of the implied reward; higher stays closer to the reference
    reference_free: bool = False  # True: log pi_ref = 0 (no reference model)
    label_smoothing: float = 0.0  # cDPO: assumed probability that a pair's label is flipped

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.beta > 0, "DPOConfig.beta", self.beta, "a positive float")
        check(0.0 <= self.label_smoothing < 0.5, "DPOConfig.label_smoothing", self.label_smoothing, "[0, 0.5)")


def dpo_loss(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    reference_chosen: torch.Tensor | None,
    reference_rejected: torch.Tensor | None,
    *,
    beta: float,
    label_smoothing: float = 0.0,
) -> dict[str, torch.Tensor]:
    """Sequence log-probs (B,) -> {"loss", "chosen_reward", "rejected_reward"}; None references = reference-free."""
    chosen_ratio = policy_chosen - (reference_chosen if reference_chosen is not None else 0.0)
    rejected_ratio = policy_rejected - (reference_rejected if reference_rejected is not None else 0.0)
    logits = beta * (chosen_ratio - rejected_ratio)  # (B,)
    loss = -(1 - label_smoothing) * F.logsigmoid(logits) - label_smoothing * F.logsigmoid(-logits)
    return {"loss": loss.mean(), "chosen_reward": beta * chosen_ratio.detach(),
            "rejected_reward": beta * rejected_ratio.detach()}


class DPO:
    """objective(policy, pair batch) -> {"loss", "accuracy", "margin", "chosen_reward", "rejected_reward"}.

    The batch is `collate_pairs` output (chosen rows, then rejected rows). `reference` is a
    frozen copy of the starting policy (see `frozen_copy`); it is left None when reference_free.
    """

    def __init__(self, config: DPOConfig | None = None, reference: nn.Module | None = None) -> None:
        self.config = config or DPOConfig()
        if self.config.reference_free and reference is not None:
            raise ConfigError("DPOConfig.reference_free=True takes no reference model; pass reference=None")
        if not self.config.reference_free and reference is None:
            raise ConfigError("DPO needs a frozen reference policy: pass reference=frozen_copy(policy), "
                              "or set reference_free=true")
        self.reference = reference

    def __call__(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        chosen, rejected = sequence_logprobs(model, batch).chunk(2)
        ref_chosen = ref_rejected = None
        if self.reference is not None:
            device = batch["input_ids"].device
            if next(self.reference.parameters()).device != device:
                self.reference.to(device)
            with torch.no_grad():
                ref_chosen, ref_rejected = sequence_logprobs(self.reference, batch).chunk(2)
        out = dpo_loss(chosen, rejected, ref_chosen, ref_rejected, beta=self.config.beta,
                       label_smoothing=self.config.label_smoothing)
        gap = out["chosen_reward"] - out["rejected_reward"]
        return {"loss": out["loss"], "accuracy": (gap > 0).float().mean(), "margin": gap.mean(),
                "chosen_reward": out["chosen_reward"].mean(), "rejected_reward": out["rejected_reward"].mean(),
                "n_targets": len(chosen)}  # every metric is a mean over pairs
