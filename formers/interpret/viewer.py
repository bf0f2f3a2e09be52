"""The attention viewer: one self-contained HTML page (inline data, script and styles; no network).

    view = build_view(model, tokenizer, text="a red circle", pixel_values=pixels)
    write_page(view, "page.html")       # -> Path; open it in any browser
    Viewer(view)                        # in Jupyter: drawn in the cell output

The page holds a head view (lines from query to key tokens, one colour per head), a model view (a
layers x heads grid of heatmaps; a click selects one; under each, the head's importance when the view
has it), an overlay of the chosen token's attention on
the image's patches, and the modality-importance plot (share taken from the image per layer and head,
for the chosen token or generation step). The drawing code is viewer.js beside this file.

Long inputs: a text stream longer than `max_tokens` is shown in blocks of consecutive tokens (a block's
row is the mean of its tokens' rows, its column the sum of their columns, so rows still sum to 1), and
`max_layers` (build_view) keeps evenly spaced layers. The head view itself shows at most 48 tokens.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import io
import json
import math
import os
from pathlib import Path

import torch

from formers.errors import ConfigError
from formers.interpret.views import AttentionView, ModalityRow, Stream
from formers.storage import write_text

HERE = Path(__file__).parent


def blocks(n: int, max_tokens: int) -> torch.Tensor:
    """(n_blocks, n) 0/1 matrix grouping n tokens into at most max_tokens consecutive blocks."""
    size = math.ceil(n / max_tokens)
    index = torch.arange(n) // size
    return (index[None] == torch.arange(int(index[-1]) + 1)[:, None]).float()


def pool_stream(stream: Stream, group: torch.Tensor) -> Stream:
    labels = []
    for row in group:
        members = row.nonzero().flatten().tolist()
        first, last = stream.labels[members[0]], stream.labels[members[-1]]
        labels.append(first if len(members) == 1 else f"{first}\u2026{last}")
    return Stream(labels, ["text"] * len(labels), [-1] * len(labels))


def subsample(view: AttentionView, max_tokens: int) -> AttentionView:
    """Text streams longer than max_tokens pooled into blocks (see the module docstring)."""
    if max_tokens < 2:
        raise ConfigError(f"max_tokens={max_tokens} is not allowed; expected an int >= 2")
    groups = {name: blocks(len(s.labels), max_tokens) for name, s in view.streams.items()
              if len(s.labels) > max_tokens and set(s.modality) == {"text"}}
    if not groups:
        return view

    def rows(name: str, x: torch.Tensor) -> torch.Tensor:  # (..., T_q, *) -> (..., blocks, *): mean of rows
        g = groups.get(name)
        return x if g is None else torch.einsum("bq,...qk->...bk", g / g.sum(1, keepdim=True), x)

    def cols(name: str, x: torch.Tensor) -> torch.Tensor:  # (..., T_k) -> (..., blocks): sum of columns
        g = groups.get(name)
        return x if g is None else x @ g.T

    streams = {name: pool_stream(s, groups[name]) if name in groups else s for name, s in view.streams.items()}
    layers = [dataclasses.replace(la, weights=cols(la.key, rows(la.query, la.weights))) for la in view.layers]
    modality = [ModalityRow(m.name, m.query, m.measure, rows(m.query, m.share[..., None])[..., 0])
                for m in view.modality]
    return AttentionView(view.title, streams, layers, modality, view.image, view.grid)


def flat(x: torch.Tensor) -> list[float]:
    return [round(v, 4) for v in x.float().flatten().tolist()]


def png_data_uri(image: torch.Tensor) -> str:
    """(H, W, 3) in [0, 1] -> a data: URI of a PNG (matplotlib's writer; no extra dependency)."""
    from matplotlib.image import imsave  # imported here: matplotlib costs ~0.3 s, only pages with images need it

    buffer = io.BytesIO()
    imsave(buffer, image.clamp(0, 1).numpy(), format="png")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def page_data(view: AttentionView) -> dict:
    """The JSON the page script reads: flat weight lists with their shapes."""
    return {
        "title": view.title,
        "streams": {name: dataclass_dict(s) for name, s in view.streams.items()},
        "layers": [{"name": la.name, "query": la.query, "key": la.key, "kind": la.kind,
                    "heads": la.weights.shape[0], "tq": la.weights.shape[1], "tk": la.weights.shape[2],
                    "w": flat(la.weights),
                    "importance": None if la.importance is None else flat(la.importance)} for la in view.layers],
        "modality": [{"name": m.name, "query": m.query, "measure": m.measure, "heads": m.share.shape[0],
                      "share": flat(m.share)} for m in view.modality],
        "image": None if view.image is None else {"src": png_data_uri(view.image), "rows": view.grid[0],
                                                  "cols": view.grid[1]},
    }


def dataclass_dict(stream: Stream) -> dict:
    return {"labels": stream.labels, "modality": stream.modality, "patch": stream.patch}


def render(view: AttentionView, *, max_tokens: int = 96) -> str:
    """The whole page as one string."""
    data = json.dumps(page_data(subsample(view, max_tokens)), separators=(",", ":"))
    data = data.replace("</", "<\\/")  # a token "</script>" must not end the script element
    template = (HERE / "viewer.html").read_text()
    return (template.replace("/*STYLE*/", (HERE / "viewer.css").read_text())
            .replace("/*SCRIPT*/", (HERE / "viewer.js").read_text())
            .replace("/*DATA*/null", data)
            .replace("<!--TITLE-->", html.escape(view.title)))


def write_page(view: AttentionView, path: str | os.PathLike, *, max_tokens: int = 96) -> Path:
    """Write the page atomically (no half-written page, even on error); returns its path."""
    path = Path(path)
    if path.suffix.lower() not in (".html", ".htm"):
        raise ConfigError(f"the viewer writes an HTML page; give a path ending in .html, got {str(path)!r}")
    write_text(path, render(view, max_tokens=max_tokens))
    return path


class Viewer:
    """The page as a Jupyter output: an iframe of the page's own document (its script and ids stay apart
    from the notebook's, and several viewers can share a notebook)."""

    def __init__(self, view: AttentionView, *, max_tokens: int = 96, height: int = 900) -> None:
        self.view, self.max_tokens, self.height = view, max_tokens, height

    def _repr_html_(self) -> str:
        page = html.escape(render(self.view, max_tokens=self.max_tokens), quote=True)
        return f'<iframe srcdoc="{page}" style="width:100%;height:{self.height}px;border:0"></iframe>'

    def save(self, path: str | os.PathLike) -> Path:
        return write_page(self.view, path, max_tokens=self.max_tokens)
