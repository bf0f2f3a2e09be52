import contextlib

import pytest
import torch

from formers.alignment import RulesConfig, RuleTask
from formers.data import TokenizerConfig, train_tokenizer
from formers.models import GPT, GPTConfig


@contextlib.contextmanager
def one_thread():
    """These models are tiny: a second thread only adds synchronisation, and the cores are shared."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _one_thread():
    with one_thread():
        yield


@pytest.fixture(scope="session")
def tokenizer():
    return train_tokenizer(TokenizerConfig(kind="char"), RuleTask.alphabet())


def tiny_gpt(vocab_size: int, seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=vocab_size, d_model=32, n_heads=4, n_layers=2, max_seq_len=24, dropout=0.0))


def length_task(**kw) -> RuleTask:
    """The length rule alone: the quickest for a tiny model to learn, so tests stay short."""
    return RuleTask(RulesConfig(rules=["length"], **kw))
