import contextlib
import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
DEFAULT_THREADS = min(2, os.cpu_count() or 1)


@contextlib.contextmanager
def torch_threads(n: int):
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _same_start():
    """Every test starts from the same seed and thread count, whatever the test before it left: a
    training trajectory (and so a convergence bound) depends on both."""
    torch.manual_seed(0)
    torch.set_num_threads(DEFAULT_THREADS)


@pytest.fixture
def one_thread():
    """Tiny models run fastest on one thread: with two, every small op pays a thread hand-off that
    costs milliseconds when the cores are shared."""
    with torch_threads(1):
        yield
