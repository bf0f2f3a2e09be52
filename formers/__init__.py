"""formers: the Transformer family from one small set of blocks, trained by one loop.

The public functions are imported on first use (PEP 562), so `import formers` and the `formers`
command's help stay fast: torch is imported only when a function that needs it is called.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from formers.generation import generate
    from formers.io import load, load_tokenizer
    from formers.nn.weight_formats import quantize_weights
    from formers.sentences import embed
    from formers.storage import save_model

# public name -> the module that defines it
_API = {
    "embed": "formers.sentences",
    "generate": "formers.generation",
    "load": "formers.io",
    "load_tokenizer": "formers.io",
    "quantize_weights": "formers.nn.weight_formats",
    "save_model": "formers.storage",
}
# = sorted(_API); literal for linters
__all__ = ["embed", "generate", "load", "load_tokenizer", "quantize_weights", "save_model"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name not in _API:
        raise AttributeError(f"module 'formers' has no attribute {name!r}")
    value = getattr(importlib.import_module(_API[name]), name)
    globals()[name] = value  # the next lookup is an ordinary attribute
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])
