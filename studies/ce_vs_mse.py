"""Claim: cross-entropy trains a next-token predictor faster and to a better model than mean squared error.

The same character-level GPT on Python's documentation, trained with three losses (the
objective is the only change; models, data, seed and optimizer are shared):

    cross-entropy      -log p(target)                                   (formers' CausalLM)
    MSE, probabilities sum_v (softmax(z)_v - onehot_v)^2   (the Brier score)
    MSE, logits        sum_v (z_v - onehot_v)^2            (regressing the scores on the one-hot)

Every model is judged the same way, on held-out text: cross-entropy of its softmax (so
perplexity = exp of it) and top-1 accuracy. The MSE losses' gradient with respect to the
target's logit is bounded by the probability mass involved, so with ~100 characters it
starts tiny (all p ~ 1/V); cross-entropy's is 1 - p(target), large exactly when wrong.

    .venv/bin/python -m studies.ce_vs_mse --out runs/studies/ce_vs_mse       # ~3 min on 2 cores
    .venv/bin/python -m studies.ce_vs_mse --quick --out /tmp/ce_vs_mse      # ~10 s
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import nn
from torch.nn import functional as F

from formers.models import GPT, GPTConfig
from formers.objectives.causal_lm import IGNORE_INDEX, CausalLM, token_cross_entropy
from formers.optim import ScheduleConfig
from studies.common import curve, fit, lm_data, pyplot, save, study_args

NAME = "ce_vs_mse"


class SquaredError:
    """Next-token prediction by squared error against the one-hot target, on probabilities or raw logits.

    Returns the loss plus the same held-out metrics as CausalLM ("ce", "accuracy"), so every
    model is compared on one scale.
    """

    def __init__(self, on: str) -> None:
        self.on = on  # "probs" | "logits"

    def __call__(self, model: nn.Module, batch: dict) -> dict:
        logits = model(batch["input_ids"], attention_mask=batch.get("attention_mask")).logits.float()  # (B, T, V)
        labels = batch["labels"]
        asked = labels != IGNORE_INDEX  # (B, T)
        onehot = F.one_hot(labels.clamp_min(0), logits.shape[-1]).float()  # (B, T, V)
        prediction = logits.softmax(-1) if self.on == "probs" else logits
        loss = (prediction - onehot).pow(2).sum(-1)[asked].mean()  # sum over the vocabulary, mean over tokens
        metrics = token_cross_entropy(logits.detach(), labels)
        return {"loss": loss, "ce": metrics["loss"], "accuracy": metrics["accuracy"], "n_targets": metrics["n_targets"]}


class CrossEntropy:
    """CausalLM, reporting its loss also as "ce" so all three runs log the same keys."""

    def __call__(self, model: nn.Module, batch: dict) -> dict:
        metrics = CausalLM()(model, batch)
        return {**metrics, "ce": metrics["loss"].detach()}


@dataclasses.dataclass
class Setting:
    losses: tuple[str, ...] = ("cross-entropy", "MSE, probabilities", "MSE, logits")
    d_model: int = 64
    n_layers: int = 4
    seq_len: int = 64
    batch_size: int = 16
    steps: int = 500
    lr: float = 2e-3
    val_tokens: int = 8192
    seed: int = 0


QUICK = Setting(losses=("cross-entropy", "MSE, probabilities"), n_layers=1, seq_len=32, steps=100, val_tokens=2048)
OBJECTIVES = {"cross-entropy": CrossEntropy, "MSE, probabilities": lambda: SquaredError("probs"),
              "MSE, logits": lambda: SquaredError("logits")}


def train(loss: str, s: Setting) -> dict:
    tokenizer, source, val = lm_data(s.seq_len, s.batch_size, s.val_tokens, s.seed)
    torch.manual_seed(s.seed)
    model = GPT(GPTConfig(vocab_size=tokenizer.vocab_size, d_model=s.d_model, n_heads=4, n_layers=s.n_layers,
                          max_seq_len=s.seq_len, dropout=0.0))
    result = fit(model, OBJECTIVES[loss](), source, steps=s.steps, lr=s.lr, batch_size=s.batch_size,
                 schedule=ScheduleConfig(kind="cosine", warmup_steps=s.steps // 10), val_batches=val,
                 eval_every=max(1, s.steps // 10), seed=s.seed)
    last = result["last_eval"]
    return {"ce": last["val/ce"], "perplexity": math.exp(last["val/ce"]), "accuracy": last["val/accuracy"],
            "ce_curve": curve(result["history"], "val/ce"), "accuracy_curve": curve(result["history"], "val/accuracy"),
            "vocab_size": tokenizer.vocab_size}


def plot(runs: dict[str, dict], s: Setting):
    plt = pyplot()
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 3.8))
    for name, run in runs.items():
        ax.plot(list(run["ce_curve"]), list(run["ce_curve"].values()), marker=".",
                label=f"{name} (ppl {run['perplexity']:.1f})")
        bx.plot(list(run["accuracy_curve"]), list(run["accuracy_curve"].values()), marker=".",
                label=f"{name} ({run['accuracy']:.3f})")
    vocab = next(iter(runs.values()))["vocab_size"]
    ax.axhline(math.log(vocab), color="grey", ls=":", label=f"uniform guess, ln {vocab}")
    ax.set_ylabel("held-out cross-entropy (nats/char)")
    bx.set_ylabel("held-out next-character accuracy")
    for a, title in ((ax, "every model judged by cross-entropy"), (bx, "top-1 accuracy")):
        a.set_xlabel("step")
        a.set_title(title, fontsize=10)
        a.grid(alpha=0.3)
        a.legend(fontsize=8)
    return fig


def main(argv: list[str] | None = None) -> dict:
    args = study_args(__doc__, argv, NAME)
    s = QUICK if args.quick else Setting()
    runs = {}
    for loss in s.losses:
        runs[loss] = train(loss, s)
        r = runs[loss]
        print(f"{loss:20s} held-out ce {r['ce']:.3f} (perplexity {r['perplexity']:.2f}), accuracy {r['accuracy']:.3f}")
    result = {"claim": "cross-entropy converges faster and to better accuracy and perplexity than MSE",
              "setting": dataclasses.asdict(s),
              "final": {n: {k: r[k] for k in ("ce", "perplexity", "accuracy")} for n, r in runs.items()},
              "curves": {n: {"ce": r["ce_curve"], "accuracy": r["accuracy_curve"]} for n, r in runs.items()}}
    return save(args.out, NAME, result, plot(runs, s))


if __name__ == "__main__":
    main()
