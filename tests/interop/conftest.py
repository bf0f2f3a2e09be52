import pytest
import transformers

transformers.logging.set_verbosity_error()  # reference models are random-init on purpose: no advice needed


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Parity checks run tiny models (see `one_thread`)."""
