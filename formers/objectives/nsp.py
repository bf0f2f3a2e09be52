"""Next-sentence prediction (Devlin et al. 2019): is segment B the continuation of segment A?

`next_sentence_pairs` builds `[CLS] A [SEP] B [SEP]` with segment ids 0 for `[CLS] A [SEP]`
and 1 for `B [SEP]`; half of the B segments follow A in its document, half come from
another document. Labels follow Hugging Face's `next_sentence_label`: 0 = B is the true
continuation, 1 = B is random. `BertPretraining` is the sum of the MLM and NSP losses.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from formers.errors import DataError
from formers.objectives.causal_lm import Weighted
from formers.objectives.masked_lm import masked_lm_loss

IS_NEXT, IS_RANDOM = 0, 1


def _randint(low: int, high: int, generator: torch.Generator) -> int:
    """Uniform integer in [low, high] (inclusive)."""
    return int(torch.randint(low, high + 1, (1,), generator=generator))


def _pick_doc(weights: torch.Tensor, generator: torch.Generator) -> int:
    return int(torch.multinomial(weights, 1, generator=generator))


def next_sentence_pairs(
    docs: Sequence[torch.Tensor],
    *,
    batch_size: int,
    max_len: int,
    cls_id: int,
    sep_id: int,
    pad_id: int,
    generator: torch.Generator,
    min_segment: int = 4,
) -> dict[str, torch.Tensor]:
    """Sample `batch_size` segment pairs from `docs` (1-D token tensors), each padded to `max_len`.

    Documents are drawn in proportion to their length. A ends at a random split point of its
    document; the true B starts there, a random B at a random point of another document.
    Returns input_ids, token_type_ids, attention_mask (B, max_len) and next_sentence_label (B,).
    """
    budget = max_len - 3  # room left for [CLS], [SEP], [SEP]
    if budget < 2 * min_segment:
        raise DataError(f"max_len={max_len} leaves {budget} tokens for two segments; need >= {2 * min_segment + 3}")
    lengths = torch.tensor([len(d) for d in docs], dtype=torch.float)
    eligible = lengths * (lengths >= 2 * min_segment)
    if int((eligible > 0).sum()) < 2:
        raise DataError(f"next-sentence pairs need two documents of >= {2 * min_segment} tokens; add more text")
    ids = torch.full((batch_size, max_len), pad_id, dtype=torch.long)
    segments = torch.zeros((batch_size, max_len), dtype=torch.long)
    labels = torch.empty(batch_size, dtype=torch.long)
    for row in range(batch_size):
        d = _pick_doc(eligible, generator)
        doc = docs[d]
        split = _randint(min_segment, len(doc) - min_segment, generator)
        a = doc[max(0, split - _randint(min_segment, budget - min_segment, generator)): split]
        b_len = budget - len(a)
        labels[row] = IS_NEXT if float(torch.rand(1, generator=generator)) < 0.5 else IS_RANDOM
        if labels[row] == IS_NEXT:
            b = doc[split: split + b_len]
        else:
            others = eligible.clone()
            others[d] = 0.0  # a random segment from the same document could be its true continuation
            other = docs[_pick_doc(others, generator)]
            start = _randint(0, len(other) - min_segment, generator)
            b = other[start: start + b_len]
        pair = torch.cat([torch.tensor([cls_id]), a, torch.tensor([sep_id]), b, torch.tensor([sep_id])])
        ids[row, : len(pair)] = pair
        segments[row, len(a) + 2: len(pair)] = 1  # B and its closing [SEP]
    return {
        "input_ids": ids,
        "token_type_ids": segments,
        "attention_mask": (ids != pad_id).long(),
        "next_sentence_label": labels,
    }


def next_sentence_loss(nsp_logits: torch.Tensor, labels: torch.Tensor) -> dict:
    """nsp_logits (B, 2), labels (B,) in {IS_NEXT, IS_RANDOM} -> cross-entropy and accuracy."""
    loss = F.cross_entropy(nsp_logits.float(), labels)
    with torch.no_grad():
        accuracy = (nsp_logits.argmax(-1) == labels).float().mean()
    return {"loss": loss, "accuracy": accuracy}


class BertPretraining:
    """BERT's pretraining loss: masked LM + next-sentence prediction, one forward pass.

    The loss adds a mean over masked tokens to a mean over sentence pairs, so no one count of
    targets weighs it: it carries no n_targets (each micro-batch weighs 1, as in BERT). Its MLM
    metrics are weighed by masked tokens, its NSP metrics by pairs.
    """

    def __call__(self, model: nn.Module, batch: dict) -> dict:
        out = model(batch["input_ids"], attention_mask=batch.get("attention_mask"),
                    token_type_ids=batch.get("token_type_ids"))
        mlm = masked_lm_loss(out.logits, batch["labels"])
        nsp = next_sentence_loss(out.nsp_logits, batch["next_sentence_label"])
        return {
            "loss": mlm["loss"] + nsp["loss"],
            "mlm_loss": Weighted(mlm["loss"].detach(), mlm["n_targets"]),
            "mlm_accuracy": Weighted(mlm["accuracy"], mlm["n_targets"]),
            "nsp_loss": nsp["loss"].detach(), "nsp_accuracy": nsp["accuracy"],
        }
