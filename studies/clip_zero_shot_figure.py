"""The figure of studies/clip_zero_shot.py: zero-shot vs probes per split, per-pair heatmaps, and the judged
samples of a DALL-E (or the shuffled-caption control)."""

from __future__ import annotations

import numpy as np

from formers.data.shapes import ShapesConfig
from studies.common import pyplot

METHODS = ("zero-shot", "probe (embedding)", "probe (pooled)")
COLOURS = {"zero-shot": "#c74", "probe (embedding)": "#48c", "probe (pooled)": "#8ad"}
KINDS = ("both right", "colour right, shape wrong", "shape right, colour wrong", "both wrong")
KIND_COLOURS = ("#4a8", "#ec6", "#c9c", "#c55")


def plot(result: dict, shapes: ShapesConfig, shown: dict):
    plt = pyplot()
    fig = plt.figure(figsize=(15, 9))
    grid = fig.add_gridspec(2, 3, hspace=0.42, wspace=0.32, left=0.06, right=0.98, top=0.93, bottom=0.07)
    probe = result["zero_shot_vs_probe"]["splits"]

    ax = fig.add_subplot(grid[0, 0])
    groups = [(a, sp) for a in ("colour", "shape") for sp in ("seen", "heldout")]
    width = 0.8 / len(METHODS)
    for m, method in enumerate(METHODS):
        values = [probe[sp][a][method]["accuracy"] for a, sp in groups]
        xs = np.arange(len(groups)) + (m - 1) * width
        ax.bar(xs, values, width, label=method, color=COLOURS[method])
        for x, v in zip(xs, values, strict=True):
            ax.text(x, v + 0.01, f"{v:.2f}", ha="center", fontsize=6.5, rotation=90)
    for g, (a, sp) in enumerate(groups):
        ax.hlines(probe[sp][a]["chance"], g - 0.4, g + 0.4, color="k", ls=":", lw=1)
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels([f"{a}\n{'seen' if sp == 'seen' else 'held-out'} pairs" for a, sp in groups], fontsize=8)
    ax.set_ylim(0, 1.25)
    ax.set_title("single objects: zero-shot vs linear probes (dotted: chance)", fontsize=9)
    ax.legend(fontsize=7, loc="upper right", ncol=3, handlelength=1, columnspacing=0.8)

    # shape accuracy per colour x shape pair, seen pairs from the test split, held-out pairs (boxed) from theirs
    names, colours = list(shapes.shapes), list(shapes.colours)
    cells = {**probe["seen"]["shape_accuracy_by_pair"], **probe["heldout"]["shape_accuracy_by_pair"]}
    held_out = set(probe["heldout"]["shape_accuracy_by_pair"])
    for col, method in ((1, "zero-shot"), (2, "probe (embedding)")):
        ax = fig.add_subplot(grid[0, col])
        table = np.array([[cells.get(f"{c} {n}", {}).get(method, np.nan) for n in names] for c in colours])
        ax.imshow(table, cmap="RdYlGn", vmin=0, vmax=1)
        for i, c in enumerate(colours):
            for j, n in enumerate(names):
                ax.text(j, i, f"{table[i, j]:.2f}", ha="center", va="center", fontsize=6.5)
                if f"{c} {n}" in held_out:
                    ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, lw=2, ec="k"))
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, rotation=45, fontsize=7)
        ax.set_yticks(range(len(colours)))
        ax.set_yticklabels(colours, fontsize=7)
        acc = {sp: probe[sp]["shape"][method]["accuracy"] for sp in ("seen", "heldout")}
        ax.set_title(
            f"{method}: shape accuracy per colour x shape\n"
            f"seen pairs {acc['seen']:.2f}, held-out (boxed) {acc['heldout']:.2f}",
            fontsize=8,
        )

    ax = fig.add_subplot(grid[1, 0])
    pair_methods = list(probe["seen"]["pair"])
    pair_colours = ["#c74", "#e96", "#48c", "#8ad"]
    w = 0.8 / len(pair_methods)
    for m, method in enumerate(pair_methods):
        values = [probe[sp]["pair"][method] for sp in ("seen", "heldout")]
        xs = np.arange(2) + (m - (len(pair_methods) - 1) / 2) * w
        ax.bar(xs, values, w, color=pair_colours[m], label=method)
        for x, v in zip(xs, values, strict=True):
            ax.text(x, v + 0.01, f"{v:.2f}", ha="center", fontsize=7)
    ax.set_xticks(range(2))
    ax.set_xticklabels(["seen pairs", "held-out pairs"], fontsize=8)
    ax.set_ylim(0, 1.3)
    ax.set_title("colour and shape both right (chance 1/64)", fontsize=9)
    ax.legend(fontsize=6.5, loc="upper center", ncol=2, handlelength=1)

    ax = fig.add_subplot(grid[1, 1])
    gen = result["generation"]
    bars = [(sp, k) for sp in ("seen", "heldout") for k in ("all samples", "reranked first")]
    for b, (sp, k) in enumerate(bars):
        bottom = 0.0
        for kind, colour in zip(KINDS, KIND_COLOURS, strict=True):
            v = gen[sp][k][kind]
            ax.bar(b, v, 0.6, bottom=bottom, color=colour, label=kind if b == 0 else None)
            if v >= 0.06:
                ax.text(b, bottom + v / 2, f"{v:.2f}", ha="center", va="center", fontsize=7)
            bottom += v
    real_key = "judge on the prompts' real images"
    if "own image matches" not in gen["seen"]:
        for g, sp in enumerate(("seen", "heldout")):
            ax.hlines(
                gen[sp][real_key],
                2 * g - 0.35,
                2 * g + 1.35,
                color="k",
                ls="--",
                lw=1.2,
                label="judge on the prompts' real images" if g == 0 else None,
            )
    ax.set_xticks(range(len(bars)))
    ax.set_xticklabels(
        [
            f"{'seen' if sp == 'seen' else 'held-out'}\n{'all' if k == 'all samples' else 'CLIP first'}"
            for sp, k in bars
        ],
        fontsize=8,
    )
    ax.set_ylim(0, 1.3)
    title = (
        "quick stand-in: real images, own vs shuffled captions"
        if "own image matches" in gen["seen"]
        else "DALL-E samples judged by the CLIP"
    )
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=6.5, loc="upper center", ncol=2, handlelength=1)

    ax = fig.add_subplot(grid[1, 2])  # a few held-out prompts: samples best-first by the CLIP, judged pair below
    captions, images, order, judged, pairs = shown["heldout"]
    picks, seen = [], set()
    for i, pair in enumerate(pairs):  # one prompt per held-out pair
        if pair not in seen:
            seen.add(pair)
            picks.append(i)
    picks = picks[:6]
    n = min(images.shape[1], 6)
    size = images.shape[-1]
    canvas = np.ones((len(picks) * (size + 4), n * (size + 2), 3))
    for r, i in enumerate(picks):
        for c in range(n):
            j = order[i, c].item()
            y, x = r * (size + 4), c * (size + 2)
            canvas[y : y + size, x : x + size] = images[i, j].permute(1, 2, 0).numpy()
    ax.imshow(canvas, interpolation="nearest")
    names_all = shapes.all_pairs
    for r, i in enumerate(picks):
        ax.text(-3, r * (size + 4) + size / 2, " ".join(pairs[i]), ha="right", va="center", fontsize=7)
        for c in range(n):
            c_, s_ = names_all[judged[i, order[i, c]].item()]
            ok = (c_, s_) == pairs[i]
            ax.text(
                c * (size + 2) + size / 2,
                r * (size + 4) + size + 1.5,
                s_,
                ha="center",
                va="center",
                fontsize=5,
                color="#080" if ok else "#c00",
            )
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title("held-out prompts, samples in CLIP's order (judged shape below)", fontsize=9)
    return fig
