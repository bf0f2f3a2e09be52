"""Data: tokenizers, embedded corpora and resumable batch sources."""

from formers.data.batches import TokenWindows, eval_windows
from formers.data.corpora import load_corpus, pydoc_topics, split_text
from formers.data.tokenizers import Tokenizer, TokenizerConfig, train_tokenizer

__all__ = [
    "Tokenizer",
    "TokenizerConfig",
    "TokenWindows",
    "eval_windows",
    "load_corpus",
    "pydoc_topics",
    "split_text",
    "train_tokenizer",
]
