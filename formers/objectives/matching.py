"""Image-text matching with mined and hard negatives, and the vision-language pretraining objective
(ITC + ITM + MLM [+ masked patch modelling]) as one weighted sum (ALBEF, Li et al. 2021; BLIP, 2022).

Batches are Shapes `MatchingBatches`: pixel_values, input_ids / attention_mask (a true caption),
negative_input_ids / negative_attention_mask (the same caption with one attribute changed: the dataset's
hard negative), group_ids (equal iff two images hold the same objects, so each one's caption fits both).

  ITC  symmetric InfoNCE (formers.objectives.contrastive) over the (B, B) image-text similarities; pairs of
       one group are not negatives
  ITM  a binary head on the fused [CLS] over 4 kinds of pairs (ALBEF sec. 3.2 for the first three):
         positive       image i with its caption
         mined text     image i with caption j, j drawn with probability softmax(sim[i, :]) over the
                        batch, its own group excluded (the positive and its duplicates): hard for ITC
         mined image    caption i with image j, drawn the same way over sim[:, i]
         hard text      image i with its caption's one-attribute negative (colour, shape, size, position)
       and in evaluation also an *easy* negative: a caption of another group drawn uniformly
  MLM  caption tokens masked (BERT's 80/10/10) and predicted by the fused model: words from the image
  MIM  visual tokens zeroed at random (UNITER's masked region modelling, Chen et al. 2020) and their
       tower features regressed from the fused states: the image read with text context

Random choices (negatives, masks) come from a generator seeded by the batch's image ids, so the same batch
gets the same choices in every run and after a resume.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn
from torch.nn import functional as F

from formers.config import Config, check
from formers.errors import DataError
from formers.objectives.causal_lm import token_cross_entropy
from formers.objectives.contrastive import info_nce
from formers.objectives.masked_lm import mask_tokens

KINDS = ("positive", "mined_text", "mined_image", "hard_text", "easy_text")  # the ITM pair kinds


@dataclasses.dataclass(kw_only=True)
class VLPObjectiveConfig(Config):
    itc_weight: float = 1.0
    itm_weight: float = 1.0
    mlm_weight: float = 1.0
    mim_weight: float = 0.0  # masked visual-token (patch feature) regression
    hard_negatives: bool = True  # the dataset's one-attribute negatives among the ITM pairs
    mask_rate: float = 0.15  # caption tokens masked for MLM
    patch_mask_rate: float = 0.15  # visual tokens zeroed for MIM

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("itc_weight", "itm_weight", "mlm_weight", "mim_weight"):
            check(getattr(self, name) >= 0, f"VLPObjectiveConfig.{name}", getattr(self, name), "a weight >= 0")
        check(self.itc_weight + self.itm_weight + self.mlm_weight + self.mim_weight > 0,
              "VLPObjectiveConfig.itc_weight", self.itc_weight, "some weight > 0")
        for name in ("mask_rate", "patch_mask_rate"):
            check(0 < getattr(self, name) < 1, f"VLPObjectiveConfig.{name}", getattr(self, name), "a rate in (0, 1)")


def batch_generator(batch: dict) -> torch.Generator:
    """A generator seeded by the batch's image ids: the same batch draws the same negatives and masks."""
    ids = batch["image_ids"].long()
    return torch.Generator().manual_seed(int((ids * (torch.arange(len(ids)) + 1)).sum()) % (2**62) + len(ids))


def same_group(batch: dict) -> torch.Tensor:
    g = batch["group_ids"]
    return g[:, None] == g[None, :]  # (B, B): caption j fits image i


def sample_negatives(similarity: torch.Tensor, same: torch.Tensor, generator: torch.Generator,
                     uniform: bool = False) -> torch.Tensor:
    """For each row i a column j outside i's group, drawn with probability softmax(similarity[i]) over those
    columns (or uniformly): (B,) indices. A row whose whole batch is its group has no negative: refused."""
    allowed = ~same.cpu()  # (B, B)
    if not bool(allowed.any(1).all()):
        raise DataError("a batch row has no caption of another group to use as a negative: batches need images "
                        "with different objects (raise batch_size)")
    scores = torch.zeros_like(allowed, dtype=torch.float) if uniform else similarity.detach().float().cpu()
    weights = torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=1)  # (B, B), 0 on the group
    return torch.multinomial(weights, 1, generator=generator).squeeze(1)


class VisionLanguagePretraining:
    """batch -> {"loss": weighted sum, "itm_loss", "mlm_loss", "mim_loss", accuracies by kind}."""

    def __init__(self, config: VLPObjectiveConfig, *, mask_id: int, vocab_size: int,
                 special_ids: list[int]) -> None:
        self.config, self.mask_id, self.vocab_size, self.special_ids = config, mask_id, vocab_size, special_ids

    def __call__(self, model: nn.Module, batch: dict) -> dict:
        c, g = self.config, batch_generator(batch)
        image = model.image_tokens(batch["pixel_values"])
        tokens, ids, mask = image.last_hidden_state, batch["input_ids"], batch["attention_mask"]
        same = same_group(batch)
        out: dict[str, torch.Tensor] = {}
        total = torch.zeros((), device=tokens.device)
        sim = model.similarity(model.image_embeds(image), model.text_embeds(ids, mask))  # (B, B)
        itc = info_nce(sim, same)  # CLIP's loss; same-group pairs are not negatives
        out.update(itc_loss=itc["loss"], itc_accuracy=itc["i2t_accuracy"])
        total = total + c.itc_weight * itc["loss"]
        if c.itm_weight > 0 or not model.training:
            itm = self.matching(model, batch, tokens, sim, same, g)
            out.update(itm)
            total = total + c.itm_weight * itm["itm_loss"]
        if c.mlm_weight > 0:
            masked, labels = mask_tokens(ids.cpu(), mask_id=self.mask_id, vocab_size=self.vocab_size,
                                         special_ids=self.special_ids, generator=g, mask_rate=c.mask_rate)
            mlm = token_cross_entropy(model.fuse(masked.to(ids.device), mask, tokens).logits, labels.to(ids.device))
            out.update(mlm_loss=mlm["loss"], mlm_accuracy=mlm["accuracy"])
            total = total + c.mlm_weight * mlm["loss"]
        if c.mim_weight > 0:
            out["mim_loss"] = self.masked_patches(model, ids, mask, tokens, g)
            total = total + c.mim_weight * out["mim_loss"]
        return {"loss": total, **out}

    def matching(self, model: nn.Module, batch: dict, tokens: torch.Tensor, sim: torch.Tensor,
                 same: torch.Tensor, g: torch.Generator) -> dict[str, torch.Tensor]:
        """The ITM loss over positives and the negative kinds, and accuracy on each kind."""
        ids, mask = batch["input_ids"], batch["attention_mask"]
        text_for_image = sample_negatives(sim, same, g).to(ids.device)  # (B,) a caption for each image
        image_for_text = sample_negatives(sim.T, same.T, g).to(ids.device)  # (B,) an image for each caption
        pairs = {"positive": (tokens, ids, mask), "mined_text": (tokens, ids[text_for_image], mask[text_for_image]),
                 "mined_image": (tokens[image_for_text], ids, mask)}
        if self.config.hard_negatives:
            pairs["hard_text"] = (tokens, batch["negative_input_ids"], batch["negative_attention_mask"])
        if not model.training:  # easy negatives only measure; ALBEF trains on mined ones
            easy = sample_negatives(sim, same, g, uniform=True).to(ids.device)
            pairs["easy_text"] = (tokens, ids[easy], mask[easy])
        visual, text, text_mask = (torch.cat(parts) for parts in zip(*pairs.values(), strict=True))
        logits = model.match_logits(model.fuse(text, text_mask, visual))  # (K * B, 2)
        b = len(ids)
        labels = torch.zeros(len(logits), dtype=torch.long, device=logits.device)
        labels[:b] = 1
        # one positive per (K - 1) negatives: weighing the positive class by K - 1 balances the two, or the head
        # learns the prior and answers "no match" to everything (measured: 300 steps, every positive missed)
        weight = torch.tensor([1.0, len(pairs) - 1.0], device=logits.device)
        out = {"itm_loss": F.cross_entropy(logits.float(), labels, weight=weight)}
        with torch.no_grad():
            right = (logits.argmax(-1) == labels).float()
            for k, name in enumerate(pairs):
                out[f"itm_{name}_accuracy"] = right[k * b : (k + 1) * b].mean()
        return out

    def masked_patches(self, model: nn.Module, ids: torch.Tensor, mask: torch.Tensor, tokens: torch.Tensor,
                       g: torch.Generator) -> torch.Tensor:
        """Zero a random patch_mask_rate of the visual tokens (at least one per image); regress their tower
        features (fixed targets: detached, so the tower is not pulled towards what is easy to predict)."""
        b, n, _ = tokens.shape
        chosen = torch.rand(b, n, generator=g) < self.config.patch_mask_rate  # (B, N)
        chosen[torch.arange(b), torch.randint(n, (b,), generator=g)] = True
        chosen = chosen.to(tokens.device)
        fused = model.fuse(ids, mask, tokens.masked_fill(chosen[..., None], 0.0))
        predicted = model.patch_head(fused.visual_hidden[chosen])  # (M, D_v)
        return F.mse_loss(predicted.float(), tokens.detach()[chosen].float())


def rerank_retrieval(model: nn.Module, batch: dict, k: int = 4) -> dict[str, float]:
    """Image -> text retrieval over one batch: recall@1 of ITC alone, and of ITC's top k reranked by the ITM
    head's match probability (ALBEF's inference). A retrieved caption is right when it fits the image
    (the same group: a caption written for an identical image is as right as its own)."""
    same = same_group(batch)
    with torch.no_grad():
        image = model.image_tokens(batch["pixel_values"])
        tokens, ids, mask = image.last_hidden_state, batch["input_ids"], batch["attention_mask"]
        sim = model.similarity(model.image_embeds(image), model.text_embeds(ids, mask))  # (B, B)
        k = min(k, len(ids))
        top = sim.topk(k, dim=1).indices  # (B, k)
        rows = torch.arange(len(ids), device=ids.device).repeat_interleave(k)  # (B * k,)
        logits = model.match_logits(model.fuse(ids[top.flatten()], mask[top.flatten()], tokens[rows]))
        match = logits.float().softmax(-1)[:, 1].view(-1, k)  # (B, k)
        reranked = top.gather(1, match.argmax(1, keepdim=True)).squeeze(1)  # (B,)
    same = same.cpu()
    itc_hit = same.gather(1, top[:, :1].cpu()).float().mean()
    itm_hit = same.gather(1, reranked[:, None].cpu()).float().mean()
    return {"itc_recall@1": float(itc_hit), f"itc_top{k}_itm_recall@1": float(itm_hit)}
