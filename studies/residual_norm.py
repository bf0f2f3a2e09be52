"""Claim: residual connections carry gradients through deep stacks; pre-norm trains where post-norm needs care.

Two experiments, each variant a config choice of the same GPT (`residual`, `norm_placement`):

1. Gradient flow at initialisation in a 24-layer stack: the norm of each block's parameter
   gradient on one batch of Python's docs, for pre-norm, post-norm, residuals without any
   norm, norms without residuals, and neither. Residual paths give every layer a direct
   route to the loss (He et al. 2016); without them the gradient has to pass through every
   layer above, and shrinks on the way.
2. Post-norm vs pre-norm, with and without learning-rate warmup, at three peak learning
   rates (6 layers, no gradient clipping): which train and which stall. Xiong et al. 2020
   argue that post-norm needs warmup and pre-norm does not.

    .venv/bin/python -m studies.residual_norm --out runs/studies/residual_norm     # ~5 min on 2 cores
    .venv/bin/python -m studies.residual_norm --quick --out /tmp/residual_norm    # ~10 s
"""

from __future__ import annotations

import dataclasses

import torch

from formers.errors import NonFiniteLossError
from formers.models import GPT, GPTConfig
from formers.objectives.causal_lm import CausalLM
from formers.optim import ScheduleConfig
from studies.common import curve, fit, lm_data, pyplot, save, study_args

NAME = "residual_norm"
VARIANTS = {  # name -> GPTConfig fields
    "pre-norm + residual": {},
    "post-norm + residual": {"norm_placement": "post"},
    "residual, no norm": {"norm_placement": "none"},
    "norm, no residual": {"residual": False},
    "neither": {"residual": False, "norm_placement": "none"},
}
DIVERGED = "diverged"


@dataclasses.dataclass
class Setting:
    deep_layers: int = 24
    d_model: int = 64
    seq_len: int = 32
    batch_size: int = 16
    grad_batches: int = 4  # gradient norms are averaged over this many validation batches
    deep_steps: int = 200  # then each deep variant trains this long (lr deep_lr, warmup, clipping): does it learn?
    deep_lr: float = 1e-3
    warmup_layers: int = 6
    lrs: tuple[float, ...] = (1e-3, 3e-3, 1e-2)
    steps: int = 300
    warmup_steps: int = 100
    val_tokens: int = 2048
    seed: int = 0


QUICK = Setting(grad_batches=1, deep_steps=0, lrs=(), val_tokens=512)  # gradient flow only


def model(s: Setting, n_layers: int, vocab_size: int, **fields) -> GPT:
    torch.manual_seed(s.seed)
    return GPT(GPTConfig(vocab_size=vocab_size, d_model=s.d_model, n_heads=4, n_layers=n_layers,
                         max_seq_len=s.seq_len, dropout=0.0, **fields))


def gradient_flow(s: Setting) -> tuple[dict[str, list[float]], dict[str, float]]:
    """Per variant: each block's gradient norm (bottom block first) at initialisation, and the validation
    loss after `deep_steps` of training (warmup and clipping on: the question is whether it learns at all)."""
    tokenizer, source, val = lm_data(s.seq_len, s.batch_size, s.val_tokens, s.seed)
    norms, trained = {}, {}
    for name, fields in VARIANTS.items():
        m = model(s, s.deep_layers, tokenizer.vocab_size, **fields)
        for batch in val[: s.grad_batches]:
            (CausalLM()(m, batch)["loss"] / s.grad_batches).backward()
        norms[name] = [sum(float(p.grad.pow(2).sum()) for p in block.parameters()) ** 0.5 for block in m.stack.blocks]
        if s.deep_steps:
            source.step = 0
            result = fit(m, CausalLM(), source, steps=s.deep_steps, lr=s.deep_lr, batch_size=s.batch_size,
                         schedule=ScheduleConfig(kind="cosine", warmup_steps=s.deep_steps // 5), val_batches=val,
                         seed=s.seed)
            trained[name] = result["last_eval"]["val/loss"]
            print(f"{name:22s} {s.deep_layers} layers, val loss after {s.deep_steps} steps: {trained[name]:.3f}")
    return norms, trained


def warmup_grid(s: Setting) -> dict[str, dict]:
    """Validation loss curves of pre/post-norm x warmup/none at each peak LR; "diverged" if the loss went non-finite."""
    tokenizer, source, val = lm_data(s.seq_len, s.batch_size, s.val_tokens, s.seed)
    out: dict[str, dict] = {}
    for lr in s.lrs:
        for placement in ("post", "pre"):
            for warmup in (0, s.warmup_steps):
                key = f"{placement}-norm, {'warmup' if warmup else 'no warmup'}, lr {lr:g}"
                source.step = 0  # every run sees the same batches
                m = model(s, s.warmup_layers, tokenizer.vocab_size, norm_placement=placement)
                try:
                    result = fit(m, CausalLM(), source, steps=s.steps, lr=lr, batch_size=s.batch_size,
                                 schedule=ScheduleConfig(kind="cosine", warmup_steps=warmup), grad_clip=None,
                                 val_batches=val, eval_every=max(1, s.steps // 10), seed=s.seed)
                    out[key] = {"final": result["last_eval"]["val/loss"], "curve": curve(result["history"], "val/loss")}
                except NonFiniteLossError:
                    out[key] = {"final": DIVERGED, "curve": {}}
                print(f"{key:40s} final val loss {out[key]['final']}")
    return out


def plot(flow: dict[str, list[float]], trained: dict[str, float], grid: dict[str, dict], s: Setting):
    plt = pyplot()
    fig, axes = plt.subplots(1, 1 + len(s.lrs), figsize=(5.5 + 4 * len(s.lrs), 3.8), squeeze=False)
    axes = axes[0]
    floor = 1e-10  # "neither" falls far below (to exactly 0 in fp32): clip it to keep the other curves readable
    for name, norms in flow.items():
        label = name + (f" (loss {trained[name]:.2f})" if name in trained else "")
        axes[0].plot(range(len(norms)), [max(n, floor) for n in norms], marker=".", label=label)
    axes[0].set_yscale("log")
    axes[0].set_ylim(floor / 3, None)
    axes[0].set_xlabel("block (0 = next to the embeddings)")
    axes[0].set_ylabel("gradient norm of the block's parameters")
    axes[0].set_title(f"{s.deep_layers} layers at init (legend: val loss after {s.deep_steps} steps)\n"
                      f"values below {floor:g} drawn at {floor:g}", fontsize=9)
    axes[0].legend(fontsize=7)
    for ax, lr in zip(axes[1:], s.lrs, strict=True):
        for key, run in grid.items():
            if key.endswith(f"lr {lr:g}") and run["curve"]:
                style = "-" if "pre" in key else "--"
                ax.plot(list(run["curve"]), list(run["curve"].values()), style, label=key.rsplit(",", 1)[0])
        ax.set_title(f"{s.warmup_layers} layers, peak lr {lr:g}, no clipping", fontsize=10)
        ax.set_xlabel("step")
        ax.set_ylabel("validation loss (nats/char)")
        ax.set_ylim(2.2, 4.8)
        ax.legend(fontsize=7)
    for ax in axes:
        ax.grid(alpha=0.3)
    return fig


def main(argv: list[str] | None = None) -> dict:
    args = study_args(__doc__, argv, NAME)
    s = QUICK if args.quick else Setting()
    flow, trained = gradient_flow(s)
    ratio = {name: norms[0] / max(norms[-1], 1e-30) for name, norms in flow.items()}
    for name, r in ratio.items():
        print(f"{name:22s} gradient norm, bottom block / top block: {r:.3g}")
    grid = warmup_grid(s)
    result = {"claim": "residuals keep gradients alive in deep stacks; pre-norm (with warmup) trains at high LR",
              "setting": dataclasses.asdict(s), "gradient_norms": flow, "bottom_to_top_ratio": ratio,
              "deep_val_loss": trained,
              "final_val_loss": {k: v["final"] for k, v in grid.items()},
              "curves": {k: v["curve"] for k, v in grid.items()}}
    return save(args.out, NAME, result, plot(flow, trained, grid, s))


if __name__ == "__main__":
    main()
