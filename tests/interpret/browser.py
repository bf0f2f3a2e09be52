"""A real headless browser for the viewer tests: Debian's chromium driven by Playwright (no download)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

CHROMIUM = Path("/usr/bin/chromium")


def launch(playwright):
    """Debian's chromium through Playwright; a missing browser fails the test with the fix."""
    if not CHROMIUM.exists():  # fail, never skip: a viewer nobody opened is not tested
        pytest.fail(f"{CHROMIUM} is missing: run scripts/setup.sh (as root it runs apt-get install -y chromium)")
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])


def pixels(png: bytes) -> np.ndarray:
    """A screenshot as (H, W, 3) floats in [0, 1]."""
    from matplotlib.image import imread

    return np.asarray(imread(io.BytesIO(png), format="png"))[..., :3]


class Page:
    """A page opened from a file, collecting console errors and uncaught exceptions."""

    def __init__(self, browser, path: Path, address: str = "", state: str = "0/-1/0") -> None:
        self.page = browser.new_page(viewport={"width": 1300, "height": 1000})
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.goto(path.resolve().as_uri() + address)
        self.wait(state)

    def wait(self, state: str) -> None:
        """Until the viewer has drawn (layer/head/token), the image overlay included when there is one."""
        self.page.wait_for_function(
            "s => document.body.dataset.state === s && (!DATA.image || "
            "document.getElementById('overlay').dataset.drawn === s)", arg=state, timeout=10_000)

    def shot(self, selector: str) -> np.ndarray:
        return pixels(self.page.locator(selector).screenshot())
