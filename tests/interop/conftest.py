import pytest
import torch
import transformers

transformers.logging.set_verbosity_error()  # reference models are random-init on purpose: no advice needed


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models run fastest on one thread (two threads pay a hand-off per op on shared cores)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
