"""Claim: dividing attention logits by sqrt(d_k) keeps the softmax soft and its gradients alive as d_k grows.

Vaswani et al. 2017 (section 3.2.1): if q and k have unit-variance components, q.k has
variance d_k, so for large d_k the softmax saturates towards one-hot rows, where its
gradient vanishes. Three measurements, scaled (1/sqrt(d_k), the default) vs unscaled
(`attention_scale=1.0`, a config choice):

1. random inputs: q, k, v ~ N(0, 1) through the explicit attention kernel, d_k = 16..1024:
   mean row entropy of the weights, and the norm of the gradient that reaches the logits
   (the gradient at the softmax's input, which is what the saturation argument is about);
2. trained inputs: small character-level GPTs on Python's docs, one per d_k (= d_head,
   with q/k components of unit variance at init as the paper assumes): after training,
   attention entropy on held-out text (weights recorded by `capture_attention`) and the
   norm of the softmax's Jacobian, the factor every gradient through it is multiplied by;
3. the same runs' validation loss curves, scaled vs unscaled, at the largest d_k.

    .venv/bin/python -m studies.attention_scaling --out runs/studies/attention_scaling    # ~3 min on 2 cores
    .venv/bin/python -m studies.attention_scaling --quick --out /tmp/scaling              # ~10 s
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import torch

from formers.interpret import capture_attention
from formers.models import GPT, GPTConfig
from formers.nn import explicit_attention
from formers.objectives.causal_lm import CausalLM
from formers.optim import ScheduleConfig
from studies.common import curve, fit, lm_data, pyplot, save, study_args

NAME = "attention_scaling"
D_VALUE = 16


@dataclasses.dataclass
class Setting:
    random_dims: tuple[int, ...] = (16, 32, 64, 128, 256, 512, 1024)
    n_keys: int = 64  # keys per query; the uniform distribution's entropy is ln(n_keys)
    n_queries: int = 256
    trained_dims: tuple[int, ...] = (16, 64, 256, 1024)
    d_model: int = 64
    n_layers: int = 2
    seq_len: int = 64
    steps: int = 300
    batch_size: int = 16
    lr: float = 2e-3
    val_tokens: int = 8192
    seed: int = 0


QUICK = Setting(random_dims=(16, 64, 512), n_queries=64, trained_dims=(512,), n_layers=1, seq_len=32, steps=40,
                val_tokens=1024)


def random_inputs(s: Setting) -> dict[str, dict[int, float]]:
    """Entropy, peak weight and the gradient at the softmax's input, over N(0, 1) queries and keys."""
    g = torch.Generator().manual_seed(s.seed)
    out: dict[str, dict[int, float]] = {}
    for d in s.random_dims:
        q = torch.randn(1, 1, s.n_queries, d, generator=g)  # (B, H, T_q, D_h)
        k = torch.randn(1, 1, s.n_keys, d, generator=g)  # (B, H, T_k, D_h)
        # Values and the loss gradient at the output keep one width, so only the logits change with d_k.
        v = torch.randn(1, 1, s.n_keys, D_VALUE, generator=g)
        upstream = torch.randn(1, 1, s.n_queries, D_VALUE, generator=g)
        for label, scale in (("scaled", d**-0.5), ("unscaled", 1.0)):
            # The logits enter the kernel as its additive bias (with q = 0), so the backward pass stops
            # exactly at the softmax's input: its gradient there is what the softmax lets through.
            logits = (q @ k.transpose(-2, -1) * scale).requires_grad_(True)  # (B, H, T_q, T_k)
            output, weights = explicit_attention(torch.zeros_like(q), k, v, bias=logits)
            (output * upstream).sum().backward()
            out.setdefault(f"entropy/{label}", {})[d] = entropy(weights)
            out.setdefault(f"grad_logits/{label}", {})[d] = logits.grad.norm(dim=-1).mean().item()
            out.setdefault(f"max_weight/{label}", {})[d] = weights.amax(-1).mean().item()
    return out


def entropy(weights: torch.Tensor) -> float:
    """Mean entropy (nats) of attention rows (..., T_q, T_k)."""
    return -(weights * weights.clamp_min(1e-30).log()).sum(-1).mean().item()


def jacobian_norm(weights: torch.Tensor) -> float:
    """Mean Frobenius norm of the softmax Jacobian diag(p) - p p^T over rows: 0 for one-hot rows.

    ||J||^2 = sum p_i^2 - 2 sum p_i^3 + (sum p_i^2)^2, so it comes straight from recorded weights.
    """
    p2, p3 = weights.pow(2).sum(-1), weights.pow(3).sum(-1)
    return (p2 - 2 * p3 + p2.pow(2)).clamp_min(0).sqrt().mean().item()


def train_lm(d_head: int, scale: float | None, s: Setting) -> tuple[GPT, dict, list]:
    tokenizer, source, val = lm_data(s.seq_len, s.batch_size, s.val_tokens, s.seed)
    torch.manual_seed(s.seed)
    model = GPT(GPTConfig(
        vocab_size=tokenizer.vocab_size, d_model=s.d_model, n_heads=1, d_head=d_head, n_layers=s.n_layers,
        max_seq_len=s.seq_len, dropout=0.0, attention_scale=scale,
        init_std=s.d_model**-0.5,  # unit-variance q and k components at init: the paper's premise
    ))
    result = fit(model, CausalLM(), source, steps=s.steps, lr=s.lr, batch_size=s.batch_size,
                 schedule=ScheduleConfig(kind="cosine", warmup_steps=s.steps // 10), val_batches=val,
                 eval_every=max(1, s.steps // 10), seed=s.seed)
    return model, result, val


@torch.no_grad()
def trained_stats(model: GPT, val: Sequence[dict]) -> dict[str, float]:
    """Attention entropy and softmax Jacobian norm on held-out text (every layer's recorded weights)."""
    model.eval()
    with capture_attention(model) as maps:
        model(val[0]["input_ids"])
    weights = maps.stacked()[..., 1:, :]  # causal row 0 attends to one key only, whatever the scale
    return {"entropy": entropy(weights), "jacobian": jacobian_norm(weights)}


def trained_inputs(s: Setting) -> dict:
    stats: dict[str, dict[int, float]] = {}
    curves: dict[str, dict[int, dict[int, float]]] = {}
    for d in s.trained_dims:
        for label, scale in (("scaled", None), ("unscaled", 1.0)):
            model, result, val = train_lm(d, scale, s)
            for key, value in trained_stats(model, val).items():
                stats.setdefault(f"{key}/{label}", {})[d] = value
            stats.setdefault(f"val_loss/{label}", {})[d] = result["last_eval"]["val/loss"]
            curves.setdefault(label, {})[d] = curve(result["history"], "val/loss")
    return {"stats": stats, "curves": curves}


def plot(random: dict, trained: dict, s: Setting):
    plt = pyplot()
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.6))
    styles = {"scaled": "o-", "unscaled": "s--"}
    for label, style in styles.items():
        axes[0].plot(list(random[f"entropy/{label}"]), list(random[f"entropy/{label}"].values()), style, label=label)
        grads = random[f"grad_logits/{label}"]
        axes[1].plot(list(grads), list(grads.values()), style, label=f"random, {label}")
        jacobian = trained["stats"][f"jacobian/{label}"]
        axes[1].plot(list(jacobian), list(jacobian.values()), style, alpha=0.5, label=f"trained (|J|), {label}")
        t_entropy = trained["stats"][f"entropy/{label}"]
        axes[2].plot(list(t_entropy), list(t_entropy.values()), style, label=label)
        largest = max(s.trained_dims)
        points = trained["curves"][label][largest]
        axes[3].plot(list(points), list(points.values()), style, label=f"{label}, d_k={largest}")
    axes[0].axhline(math.log(s.n_keys), color="grey", ls=":", label=f"uniform, ln {s.n_keys}")
    titles = ["random q, k: attention entropy", "gradient through the softmax",
              "trained LMs: entropy on held-out text", "trained LMs: validation loss"]
    ylabels = ["entropy (nats)", "|dL/dlogits| per row; |J|", "entropy (nats, causal rows)", "loss (nats/char)"]
    for ax, title, ylabel in zip(axes, titles, ylabels, strict=True):
        ax.set_title(title, fontsize=10)
        ax.set_ylabel(ylabel)
        ax.set_xlabel("step" if ax is axes[3] else "d_k")
        if ax is not axes[3]:
            ax.set_xscale("log", base=2)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    axes[1].set_yscale("log")
    return fig


def main(argv: list[str] | None = None) -> dict:
    args = study_args(__doc__, argv, NAME)
    s = QUICK if args.quick else Setting()
    random, trained = random_inputs(s), trained_inputs(s)
    result = {"claim": "1/sqrt(d_k) keeps attention soft and its gradients alive as d_k grows",
              "setting": dataclasses.asdict(s), "random_inputs": random, "trained_inputs": trained}
    save(args.out, NAME, result, plot(random, trained, s))
    for key in ("entropy/scaled", "entropy/unscaled", "grad_logits/scaled", "grad_logits/unscaled"):
        print(f"random {key:18s}", {d: round(v, 3) for d, v in random[key].items()})
    for key, values in trained["stats"].items():
        print(f"trained {key:17s}", {d: round(v, 3) for d, v in values.items()})
    return result


if __name__ == "__main__":
    main()
