"""Claim: several heads attend to several places at once, and each head specialises.

Task (needs three relations at every position): over random symbols from an alphabet of
8, the label at position i is the triple (x[i-1], x[i-3], x[i-5]) as one class of 8^3.
A one-layer causal GPT must fetch three tokens in a single attention step. We vary only
`n_heads` at a fixed d_model (d_head = d_model / n_heads), so the parameter count is the
same for every model, and record each head's attention with `capture_attention`.

One head can still solve the task in principle, by attending to the three positions with
unequal weights and decoding the mix; several heads can give each relation its own head.

    .venv/bin/python -m studies.multi_head --out runs/studies/multi_head     # ~3 min on 2 cores
    .venv/bin/python -m studies.multi_head --quick --out /tmp/multi_head    # ~10 s
"""

from __future__ import annotations

import dataclasses
import random

import torch

from formers.interpret import capture_attention
from formers.models import GPT, GPTConfig
from formers.objectives.causal_lm import IGNORE_INDEX, CausalLM
from formers.optim import ScheduleConfig
from studies.common import accuracy, curve, fit, pyplot, save, study_args, task_source, token_batch

NAME = "multi_head"


@dataclasses.dataclass
class Setting:
    alphabet: int = 8
    offsets: tuple[int, ...] = (1, 3, 5)  # the relations: label at i = (x[i-1], x[i-3], x[i-5])
    seq_len: int = 24
    d_model: int = 64
    heads: tuple[int, ...] = (1, 2, 4, 8, 16)
    seeds: tuple[int, ...] = (0, 1, 2)
    steps: int = 400
    batch_size: int = 32
    lr: float = 3e-3
    eval_every: int = 25
    n_val: int = 128
    map_heads: tuple[int, ...] = (1, 4)  # models whose attention maps are drawn


QUICK = Setting(heads=(1, 4), seeds=(0,), steps=160, eval_every=160, n_val=64)


def row(rng: random.Random, s: Setting) -> tuple[list[int], list[int]]:
    x = [rng.randrange(s.alphabet) for _ in range(s.seq_len)]
    labels = []
    for i in range(s.seq_len):
        if i < max(s.offsets):
            labels.append(IGNORE_INDEX)
            continue
        label = 0
        for offset in s.offsets:  # base-`alphabet` digits, nearest offset first
            label = label * s.alphabet + x[i - offset]
        labels.append(label)
    return x, labels


def make_model(n_heads: int, s: Setting, seed: int) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig(
        vocab_size=s.alphabet ** len(s.offsets), d_model=s.d_model, n_heads=n_heads, n_layers=1,
        max_seq_len=s.seq_len, position="learned", dropout=0.0, init_std=0.1, tie_weights=False,
    ))


@torch.no_grad()
def weight_by_offset(model: GPT, batch: dict, s: Setting) -> tuple[list[list[float]], torch.Tensor]:
    """Per head: mean attention weight at offsets 0..max+1 back (rows that can see them); one example's maps."""
    model.eval()
    with capture_attention(model) as maps:
        model(batch["input_ids"])
    weights = maps.stacked()[0]  # (B, H, T, T): the one layer
    span = max(s.offsets) + 2
    rows = torch.arange(span, s.seq_len)
    per_head = [[weights[:, h, rows, rows - o].mean().item() for o in range(span)] for h in range(weights.shape[1])]
    return per_head, weights[0]


def run(n_heads: int, seed: int, s: Setting, val: list[dict]) -> dict:
    model = make_model(n_heads, s, seed)
    source = task_source(lambda rng: token_batch([row(rng, s) for _ in range(s.batch_size)]), seed)
    result = fit(model, CausalLM(), source, steps=s.steps, lr=s.lr, batch_size=s.batch_size,
                 schedule=ScheduleConfig(kind="constant", warmup_steps=20), val_batches=val,
                 eval_every=s.eval_every, seed=seed)
    per_head, example = weight_by_offset(model, val[0], s)
    return {"params": sum(p.numel() for p in model.parameters()), "accuracy": accuracy(model, val),
            "curve": curve(result["history"], "val/accuracy"), "weight_by_offset": per_head, "example": example}


def plot(runs: dict, s: Setting):
    plt = pyplot()
    n_maps = sum(s.map_heads)
    fig = plt.figure(figsize=(3 + 2.1 * n_maps, 3.6))
    grid = fig.add_gridspec(1, n_maps + 2)
    ax = fig.add_subplot(grid[0, :2])
    for h in s.heads:
        curves = [runs[(h, seed)]["curve"] for seed in s.seeds]
        steps = list(curves[0])
        mean = [sum(c[t] for c in curves) / len(curves) for t in steps]
        ax.plot(steps, mean, marker=".", label=f"{h} head{'s' if h > 1 else ''} (d_head {s.d_model // h})")
    ax.set_xlabel("step")
    ax.set_ylabel(f"held-out accuracy (mean of {len(s.seeds)} seeds)")
    ax.set_title(f"label = x[i-{'], x[i-'.join(map(str, s.offsets))}]", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    column = 2
    for h in s.map_heads:
        example = runs[(h, s.seeds[0])]["example"][:, :16, :16]  # (H, 16, 16): the first 16 positions
        for head in range(h):
            mx = fig.add_subplot(grid[0, column])
            mx.imshow(example[head], cmap="viridis", vmin=0, vmax=1)
            mx.set_title(f"{h}-head model\nhead {head}", fontsize=9)
            mx.set_xticks([])
            mx.set_yticks([])
            mx.set_xlabel("key")
            column += 1
    return fig


def main(argv: list[str] | None = None) -> dict:
    args = study_args(__doc__, argv, NAME)
    s = QUICK if args.quick else Setting()
    rng = random.Random("validation")
    val = [token_batch([row(rng, s) for _ in range(s.n_val)])]
    runs = {(h, seed): run(h, seed, s, val) for h in s.heads for seed in s.seeds}
    summary = {h: {"params": runs[(h, s.seeds[0])]["params"],
                   "accuracy": sum(runs[(h, seed)]["accuracy"] for seed in s.seeds) / len(s.seeds),
                   "accuracy_per_seed": [runs[(h, seed)]["accuracy"] for seed in s.seeds],
                   "weight_by_offset": runs[(h, s.seeds[0])]["weight_by_offset"]} for h in s.heads}
    for h, row_ in summary.items():
        peaks = [max(range(len(w)), key=w.__getitem__) for w in row_["weight_by_offset"]]
        print(f"{h:2d} heads: params {row_['params']}, accuracy {row_['accuracy']:.3f}, heads peak at offsets {peaks}")
    result = {"claim": "at equal parameter count, several heads fetch several relations at once; heads specialise",
              "setting": dataclasses.asdict(s), "summary": summary,
              "curves": {h: {seed: runs[(h, seed)]["curve"] for seed in s.seeds} for h in s.heads}}
    return save(args.out, NAME, result, plot(runs, s))


if __name__ == "__main__":
    main()
