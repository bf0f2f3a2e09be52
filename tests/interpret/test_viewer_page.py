"""The page's data: block pooling keeps rows summing to 1; hostile labels cannot break out of the script."""

import json
import re

import torch

from formers.interpret.viewer import Viewer, render, subsample
from formers.interpret.views import AttentionView, Layer, ModalityRow, Stream


def text_view(labels: list[str]) -> AttentionView:
    t = len(labels)
    weights = torch.softmax(torch.randn(2, t, t), dim=-1)
    stream = Stream(labels, ["text"] * t, [-1] * t)
    return AttentionView("t", {"text": stream}, [Layer("l0", "text", "text", "self", weights)],
                         [ModalityRow("l0", "text", "attention mass", torch.arange(t, dtype=torch.float)[None])])


def test_blocks_average_rows_and_sum_columns():
    torch.manual_seed(0)
    view = text_view([f"w{i}" for i in range(7)])
    pooled = subsample(view, 3)  # blocks of 3: (w0..w2), (w3..w5), (w6)
    w, original = pooled.layers[0].weights, view.layers[0].weights
    assert pooled.streams["text"].labels == ["w0\u2026w2", "w3\u2026w5", "w6"]
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 3))
    torch.testing.assert_close(w[:, 0, 1], original[:, 0:3, 3:6].sum(-1).mean(-1))
    torch.testing.assert_close(pooled.modality[0].share, torch.tensor([[1.0, 4.0, 6.0]]))
    assert subsample(view, 7) is view  # short enough: untouched


def test_a_token_spelling_a_closing_script_tag_stays_data():
    page = render(text_view(["</script><script>alert(1)</script>", "b"]))
    assert page.count("</script>") == 2  # the data script's and the code script's own
    data = json.loads(re.search(r"const DATA = (.*?);</script>", page, re.S).group(1))
    assert data["streams"]["text"]["labels"][0].startswith("</script>")
    frame = Viewer(text_view(["a", "b"]))._repr_html_()
    assert frame.startswith("<iframe srcdoc=") and "&lt;script&gt;" in frame and "<script>" not in frame
