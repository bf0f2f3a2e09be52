import contextlib
import os
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
if "ATEN_CPU_CAPABILITY" in os.environ:
    # inductor's cache key misses the dispatch level: kernels compiled natively (AVX-512) would be reused
    # under an emulated AVX2 run and fail; such runs get a cache of their own
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", os.path.join(
        tempfile.gettempdir(), f"torchinductor-{os.environ['ATEN_CPU_CAPABILITY'].lower()}"))

import pytest  # noqa: E402 (after the environment torch reads at import)
import torch  # noqa: E402

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
