"""The browser the viewer tests share (one launch per module: ~1 s)."""

import pytest

from tests.interpret.browser import launch


@pytest.fixture(scope="module")
def browser():
    """A headless chromium (fails, never skips, when chromium or playwright is missing)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is missing: run scripts/setup.sh (it installs the dev extras)")
    with sync_playwright() as p:
        b = launch(p)
        yield b
        b.close()
