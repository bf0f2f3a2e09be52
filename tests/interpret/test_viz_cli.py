"""`formers viz`: a checkpoint and a text and/or image -> one page; bad input -> one line, no page."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from matplotlib.image import imsave

from formers.cli import main
from formers.data.shapes_text import shapes_tokenizer
from formers.registry import build_model
from formers.storage import save_model
from tests.interpret.cases import CONFIGS


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("ckpt")
    torch.manual_seed(0)
    for family in ("captioner", "gpt"):
        save_model(build_model(CONFIGS[family]), root / family, shapes_tokenizer())
    picture = np.zeros((40, 40, 3))
    picture[:20, :20] = (1.0, 0.0, 0.0)  # a red square in the top-left corner
    imsave(root / "square.png", picture)
    return root


def page_data(path) -> dict:
    return json.loads(re.search(r"const DATA = (.*?);</script>", path.read_text(), re.S).group(1))


def test_a_captioner_page_from_an_image_file(checkpoints, tmp_path, capsys):
    out = tmp_path / "cap.html"
    code = main(["viz", str(checkpoints / "captioner"), "--image", str(checkpoints / "square.png"),
                 "--out", str(out), "--max_new_tokens", "3", "--head_importance"])
    assert code == 0, capsys.readouterr().err
    assert str(out) in capsys.readouterr().out
    data = page_data(out)
    image = data["image"]
    assert (image["rows"], image["cols"]) == (4, 4) and image["src"].startswith("data:image/png;base64,")
    assert [layer["kind"] for layer in data["layers"]].count("cross") == 2  # one per decoder block
    assert all(len(layer["importance"]) == 4 for layer in data["layers"] if layer["kind"] != "rollout")


def test_a_text_model_and_subsampled_long_input(checkpoints, tmp_path, capsys):
    out = tmp_path / "gpt.html"
    text = " ".join(["a red circle and a blue square"] * 4)  # 28 tokens, shown in blocks of 2
    assert main(["viz", str(checkpoints / "gpt"), "--text", text, "--out", str(out), "--max_tokens", "14"]) == 0
    data = page_data(out)
    assert {(layer["tq"], layer["tk"]) for layer in data["layers"]} == {(14, 14)}
    assert data["streams"]["text"]["labels"][:2] == ["a\u2026red", "circle\u2026and"]
    assert data["image"] is None


@pytest.mark.parametrize(("args", "expected"), [
    (["captioner", "--out", "{tmp}/x.html"], "give one with --image FILE"),
    (["captioner", "--image", "{tmp}/none.png", "--out", "{tmp}/x.html"], "does not exist"),
    (["gpt", "--out", "{tmp}/x.html"], "give the text (--text)"),
    (["gpt", "--text", "a red", "--image", "{ckpt}/square.png", "--out", "{tmp}/x.html"], "leave out --image"),
    (["gpt", "--text", "a red", "--out", "{tmp}/x.png"], "ending in .html"),
    (["gpt", "--text", "a red", "--head_importance=maybe", "--out", "{tmp}/x.html"], "is not allowed"),
])
def test_bad_input_prints_one_line_and_writes_nothing(checkpoints, tmp_path, capsys, args, expected):
    args = [a.format(tmp=tmp_path, ckpt=checkpoints) for a in args]
    assert main(["viz", str(checkpoints / args[0]), *args[1:]]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and expected in err[0], err
    assert list(tmp_path.iterdir()) == []
