"""formers: the Transformer family from one small set of blocks, trained by one loop."""

from formers.generation import generate
from formers.io import load, load_tokenizer
from formers.sentences import embed
from formers.storage import save_model

__all__ = ["embed", "generate", "load", "load_tokenizer", "save_model"]
__version__ = "0.1.0"
