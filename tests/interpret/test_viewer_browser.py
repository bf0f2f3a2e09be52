"""The viewer page in a real browser: no console errors, controls change the drawing, screenshots show it."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from formers.data.shapes_text import shapes_tokenizer
from formers.interpret.runs import build_view
from formers.interpret.viewer import write_page
from formers.interpret.views import AttentionView, Layer, ModalityRow, Stream
from formers.registry import build_model
from tests.interpret import browser as browser_module
from tests.interpret.browser import Page, pixels
from tests.interpret.cases import CONFIGS


def known_view() -> AttentionView:
    """A hand-made view: two caption tokens over a 4 x 4 patch grid; token 0 reads only the top-left patch,
    token 1 only the bottom-right; head 1 of the layer reads the opposite corners. The image is mid-grey."""
    weights = torch.zeros(2, 2, 17)  # (H, T_q, [CLS] + 16 patches)
    weights[0, 0, 1] = weights[0, 1, 16] = 1.0
    weights[1, 0, 4] = weights[1, 1, 13] = 1.0
    image = Stream(["[CLS]"] + [f"p{i}" for i in range(16)], ["image"] * 17, [-1, *range(16)])
    words = Stream(["a", "circle"], ["text", "text"], [-1, -1])
    share = torch.tensor([[0.2, 0.9]])
    return AttentionView("known", {"image": image, "caption": words},
                         [Layer("cross", "caption", "image", "cross", weights)],
                         [ModalityRow("block 0", "caption", "update norm", share)],
                         torch.full((16, 16, 3), 0.5), (4, 4))


def redness(region: np.ndarray) -> float:
    return float((region[..., 0] - region[..., 1:].mean(-1)).mean())


def corners(overlay: np.ndarray) -> dict[str, float]:
    h, w = overlay.shape[0] // 4, overlay.shape[1] // 4
    return {"top-left": redness(overlay[2:h - 2, 2:w - 2]), "top-right": redness(overlay[2:h - 2, -w + 2:-2]),
            "bottom-left": redness(overlay[-h + 2:-2, 2:w - 2]), "bottom-right": redness(overlay[-h + 2:-2, -w + 2:-2])}


def test_the_overlay_lights_the_patch_each_token_and_head_reads(browser, tmp_path):
    page = Page(browser, write_page(known_view(), tmp_path / "known.html"))
    page.page.select_option("#head", "0")
    page.wait("0/0/0")
    first = page.shot("#overlay")
    lit = corners(first)
    assert lit["top-left"] > 0.3 and max(lit["top-right"], lit["bottom-left"], lit["bottom-right"]) < 0.05, lit
    page.page.fill("#token", "1")  # the range input: token 1
    page.page.dispatch_event("#token", "input")
    page.wait("0/0/1")
    lit = corners(page.shot("#overlay"))
    assert lit["bottom-right"] > 0.3 and lit["top-left"] < 0.05, lit
    page.page.select_option("#head", "1")
    page.wait("0/1/1")
    lit = corners(page.shot("#overlay"))
    assert lit["bottom-left"] > 0.3 and lit["bottom-right"] < 0.05, lit
    # the modality bar follows the token: 0.9 of a 180-pixel axis for token 1
    assert float(page.page.locator("#modality rect.bar").get_attribute("height")) == 162.0
    assert page.errors == []
    linked = Page(browser, tmp_path / "known.html", "#layer=0&head=1&token=1", "0/1/1")  # a state in the address
    assert corners(linked.shot("#overlay"))["bottom-left"] > 0.3
    assert Page(browser, tmp_path / "known.html", "#head=9&token=-3").errors == []  # out of range: the default


def test_a_real_models_page_draws_every_view_and_follows_its_controls(browser, tmp_path):
    torch.manual_seed(0)
    x = torch.linspace(-2, 2, 16)
    image = torch.stack([x[None].expand(16, 16), x[:, None].expand(16, 16), -x[None].expand(16, 16)])[None]
    view = build_view(build_model(CONFIGS["captioner"]), shapes_tokenizer(), text="a red circle above a blue square",
                      pixel_values=image, heads=True)
    path = write_page(view, tmp_path / "captioner.html")
    html = path.read_text()
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", "") and "https://" not in html  # no network
    page = Page(browser, path)
    n_maps = sum(layer.weights.shape[0] for layer in view.layers)
    assert page.page.locator("#modelview canvas").count() == n_maps == 2 * 4 + 4 * 4 + 1  # tower, decoder, rollout
    scores = page.page.locator("#modelview .importance").all_text_contents()
    assert len(scores) == n_maps - 1 and all(re.fullmatch(r"[+-]\d\.\d{3}", x) for x in scores)  # not the rollout
    cross = next(i for i, layer in enumerate(view.layers) if layer.kind == "cross")
    before = page.page.inner_html("#headview")
    page.page.select_option("#layer", str(cross))
    page.wait(f"{cross}/-1/0")
    after = page.page.inner_html("#headview")
    assert after != before and "r3c3" in after  # the keys are now the image's patches
    page.page.locator("#headview text", has_text="circle").first.click()  # a token chosen by clicking it
    assert page.page.evaluate("document.body.dataset.state") != f"{cross}/-1/0"
    page.page.locator(f'#modelview canvas[data-layer="{cross}"][data-head="2"]').click()
    page.wait(f"{cross}/2/{page.page.evaluate('state.token')}")
    assert page.page.locator("#modelview canvas.selected").count() == 1
    assert page.page.locator("#modality rect.bar").count() == 2  # one bar per decoder block
    screenshot = page.page.screenshot(full_page=True, path=str(tmp_path / "page.png"))
    shot = pixels(screenshot)
    assert shot.std() > 0.1  # not blank
    overlay = page.shot("#overlay")
    assert overlay.std() > 0.05 and redness(overlay) > 0.02  # the image is drawn and tinted by attention
    assert page.errors == []


def test_a_missing_chromium_fails_with_the_fix(monkeypatch, tmp_path):
    monkeypatch.setattr(browser_module, "CHROMIUM", tmp_path / "no-chromium")
    with pytest.raises(pytest.fail.Exception, match="run scripts/setup.sh"):
        browser_module.launch(None)


def test_long_inputs_stay_readable(browser, tmp_path):
    torch.manual_seed(0)
    t = 300  # blocks of 4 -> 75 shown tokens; the head view then shows 48 of them around the chosen one
    stream = Stream([f"w{i}" for i in range(t)], ["text"] * t, [-1] * t)
    layer = Layer("l0", "text", "text", "self", torch.softmax(torch.randn(2, t, t), dim=-1))
    view = AttentionView("long", {"text": stream}, [layer], [])
    page = Page(browser, write_page(view, tmp_path / "long.html"), "#token=70", "0/-1/70")
    labels = page.page.locator("#headview text").all_text_contents()
    assert len(labels) == 2 * 48 and "w280\u2026w283" in labels  # the last blocks, around token 70
    assert "showing 48 of 75" in page.page.inner_text("#head-note")
    assert page.errors == []
