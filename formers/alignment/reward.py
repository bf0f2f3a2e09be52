"""Reward model: a trunk plus a scalar head, trained on preference pairs (Bradley-Terry).

The score of a sequence is a linear read-out of the trunk's hidden state at its last real
token (the <eos> after the response), as in Stiennon et al. 2020 and Ouyang et al. 2022.
The trunk is any registered model whose forward takes (input_ids, attention_mask,
position_ids) and returns `last_hidden_state`; here it is usually the SFT policy.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, Literal

import torch
from torch import nn
from torch.nn import functional as F

from formers.alignment.sequences import positions_from_mask
from formers.config import Config, check
from formers.models.output import ModelOutput
from formers.registry import build_model, model_config_from_dict


@dataclasses.dataclass(kw_only=True)
class RewardModelConfig(Config):
    family: Literal["reward_model"] = "reward_model"
    trunk: dict[str, Any] = dataclasses.field(default_factory=lambda: {"family": "gpt"})  # the trunk's own config

    def __post_init__(self) -> None:
        super().__post_init__()
        model_config_from_dict(self.trunk, where="RewardModelConfig.trunk")  # fail now, by name, if it is invalid


class RewardModel(nn.Module):
    """forward(input_ids, attention_mask) -> ModelOutput(logits=(B,) scores, last_hidden_state=(B, T, D))."""

    def __init__(self, config: RewardModelConfig, trunk: nn.Module | None = None) -> None:
        super().__init__()
        self.config = config
        self.trunk = trunk if trunk is not None else build_model(model_config_from_dict(config.trunk, where="trunk"))
        self.head = nn.Linear(self.trunk.config.d_model, 1)
        nn.init.normal_(self.head.weight, std=1.0 / (self.trunk.config.d_model + 1) ** 0.5)
        nn.init.zeros_(self.head.bias)

    @classmethod
    def from_trunk(cls, trunk: nn.Module) -> RewardModel:
        """A reward model over an existing (e.g. fine-tuned) trunk; the trunk is used in place, not copied."""
        return cls(RewardModelConfig(trunk=trunk.config.to_dict()), trunk=trunk)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> ModelOutput:
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        h = self.trunk(input_ids, attention_mask=attention_mask,
                       position_ids=positions_from_mask(attention_mask)).last_hidden_state  # (B, T, D)
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        last = (attention_mask.bool() * positions).argmax(-1)  # (B,) the last real token, whatever the padding side
        pooled = h[torch.arange(h.shape[0], device=h.device), last]  # (B, D)
        return ModelOutput(logits=self.head(pooled).squeeze(-1).float(), last_hidden_state=h)


def bradley_terry_loss(
    chosen: torch.Tensor, rejected: torch.Tensor, margin: float | torch.Tensor = 0.0
) -> torch.Tensor:
    """-log sigmoid(r_chosen - r_rejected - margin), averaged over pairs.

    Bradley & Terry 1952: P(chosen preferred) = sigmoid(r_chosen - r_rejected). A margin
    (Touvron et al. 2023, Llama 2) asks the scores to differ by at least about that much.
    """
    return -F.logsigmoid(chosen - rejected - margin).mean()


@dataclasses.dataclass(kw_only=True)
class RewardConfig(Config):
    margin: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.margin >= 0.0, "RewardConfig.margin", self.margin, "a float >= 0")


class RewardObjective:
    """objective(reward_model, pair batch) -> {"loss", "accuracy", "margin", "chosen", "rejected"}.

    The batch is `collate_pairs` output: rows 0..B-1 chosen, B..2B-1 rejected (labels are unused).
    """

    def __init__(self, config: RewardConfig | None = None) -> None:
        self.config = config or RewardConfig()

    def __call__(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        scores = model(batch["input_ids"], attention_mask=batch["attention_mask"]).logits  # (2B,)
        chosen, rejected = scores.chunk(2)
        with torch.no_grad():
            gap = chosen - rejected
            metrics = {"accuracy": (gap > 0).float().mean(), "margin": gap.mean(), "chosen": chosen.mean(),
                       "rejected": rejected.mean()}
        return {"loss": bradley_terry_loss(chosen, rejected, self.config.margin), **metrics, "n_targets": len(chosen)}


@torch.no_grad()
def pairwise_accuracy(model: nn.Module, batches: Sequence[dict[str, torch.Tensor]]) -> float:
    """Fraction of held-out pairs whose chosen response scores above the rejected one."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    right = total = 0
    for batch in batches:
        scores = model(batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device)).logits
        chosen, rejected = scores.chunk(2)
        right += int((chosen > rejected).sum())
        total += len(chosen)
    model.train(was_training)
    return right / max(total, 1)


ScoreFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def reward_model_scorer(model: nn.Module) -> ScoreFn:
    """(query, query_mask, response, response_mask) -> (B,) scores of the full sequences, for PPO."""

    @torch.no_grad()
    def score(query, query_mask, response, response_mask) -> torch.Tensor:
        model.eval().to(query.device)
        ids, mask = torch.cat([query, response], 1), torch.cat([query_mask, response_mask], 1)  # (B, Tq + R)
        return model(ids, attention_mask=mask).logits.float()

    return score
