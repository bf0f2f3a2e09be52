import pytest


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """The contract battery runs tiny models (see `one_thread`)."""
