"""What a training checkpoint holds beyond the model: optimizer and RNG states.

Both are split into tensors (safetensors) and plain data (JSON) so that a resumed run
continues bit for bit; the files and the atomic step folders are `formers.storage`'s.
"""

from __future__ import annotations

import random
from typing import Any

import torch

from formers.errors import CheckpointError, ShapeMismatchError

_FIX = "re-save it or pick another checkpoint"


# ---- optimizer state --------------------------------------------------------------------
def optimizer_state_to_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """Split `optimizer.state_dict()` into tensors (for safetensors) and JSON-able plain data."""
    return split_optimizer_state(optimizer.state_dict())


def split_optimizer_state(state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """An index-keyed optimizer state dict -> (tensors, JSON-able rest).

    Tensors go under 'state.{param_index}.{name}' (Adam's `step` included: it is a tensor) and
    'param_groups.{group_index}.{key}' (a tensor `lr`). Which group values were tuples (Adam's
    betas) is recorded, since JSON only has lists.
    """
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {}
    for index, values in state.get("state", {}).items():
        for name, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{index}.{name}"] = value
            else:
                scalars[f"{index}.{name}"] = value
    groups, tuples = [], []
    for i, group in enumerate(state.get("param_groups", [])):
        plain = {}
        for key, value in group.items():
            if isinstance(value, torch.Tensor):
                tensors[f"param_groups.{i}.{key}"] = value
                continue
            if isinstance(value, tuple):
                tuples.append([i, key])
            plain[key] = value
        groups.append(plain)
    return tensors, {"param_groups": groups, "scalars": scalars, "tuples": tuples}


def join_optimizer_state(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    """Inverse of `split_optimizer_state`: the dict `optimizer.load_state_dict` takes."""
    try:
        groups = [dict(g) for g in meta["param_groups"]]
        state: dict[int, dict[str, Any]] = {}
        for key, value in tensors.items():
            kind, index, name = key.split(".", 2)
            if kind == "state":
                state.setdefault(int(index), {})[name] = value
            elif kind == "param_groups":
                groups[int(index)][name] = value
            else:
                raise ValueError(f"unexpected tensor {key!r}")
        for key, value in meta.get("scalars", {}).items():
            index, name = key.split(".", 1)
            state.setdefault(int(index), {})[name] = value
        for i, key in meta.get("tuples", []):
            groups[i][key] = tuple(groups[i][key])
    except (KeyError, IndexError, ValueError, TypeError) as e:
        raise CheckpointError(f"optimizer state is malformed ({type(e).__name__}: {e}); {_FIX}") from None
    return {"state": dict(sorted(state.items())), "param_groups": groups}


def load_optimizer_state(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    """Restore what `optimizer_state_to_tensors` saved into an optimizer over the same parameters.

    torch moves each state tensor to its parameter's device (Adam's `step` stays on the CPU
    unless the optimizer is fused or capturable), exactly as after `optimizer.state_dict()`.
    """
    state = join_optimizer_state(tensors, meta)
    _check_fits(optimizer, state)
    optimizer.load_state_dict(state)


def _check_fits(optimizer: torch.optim.Optimizer, state: dict) -> None:
    # torch checks group sizes but not state shapes; a shape mismatch would only fail later, inside step().
    saved = [len(g["params"]) for g in state["param_groups"]]
    ours = [len(g["params"]) for g in optimizer.param_groups]
    if saved != ours:
        raise CheckpointError(f"optimizer state does not fit this optimizer: it holds param groups of sizes {saved}, "
                              f"this optimizer {ours}; build it over the same trainable parameters and param groups "
                              "as the run that saved it")
    # torch pairs saved ids with parameters by position across the groups; do the same.
    params = dict(zip((i for g in state["param_groups"] for i in g["params"]),
                      (p for g in optimizer.param_groups for p in g["params"]), strict=True))
    for index, values in state["state"].items():
        for name, value in values.items():
            param = params.get(index)
            if param is None or not isinstance(value, torch.Tensor) or value.ndim == 0:
                continue  # scalars such as Adam's step; ids no group refers to are torch's to ignore
            if value.shape != param.shape:
                raise ShapeMismatchError(
                    f"optimizer state {index}.{name} has shape {tuple(value.shape)} but its parameter has "
                    f"{tuple(param.shape)}; build the optimizer over the same parameters as the saved run"
                )


# ---- random number generators -----------------------------------------------------------
def rng_state() -> tuple[dict[str, torch.Tensor], dict]:
    """Every global random generator a training step may touch: torch CPU and CUDA, Python, numpy."""
    tensors = {"torch_cpu": torch.get_rng_state()}  # a ByteTensor
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"torch_cuda.{i}"] = s
    version, internal, gauss = random.getstate()
    meta: dict[str, Any] = {"python": [version, list(internal), gauss]}
    try:
        import numpy as np
    except ImportError:
        return tensors, meta
    name, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    meta["numpy"] = [name, keys.tolist(), int(pos), int(has_gauss), float(cached)]
    return tensors, meta


def set_rng_state(tensors: dict[str, torch.Tensor], meta: dict) -> None:
    """Restore what `rng_state` returned. CUDA states are restored for the devices present now."""
    try:
        torch.set_rng_state(tensors["torch_cpu"])
        version, internal, gauss = meta["python"]
        random.setstate((version, tuple(internal), gauss))
    except (KeyError, ValueError, TypeError, RuntimeError) as e:
        raise CheckpointError(f"RNG state is missing or malformed ({type(e).__name__}: {e}); {_FIX}") from None
    cuda = sorted((k for k in tensors if k.startswith("torch_cuda.")), key=lambda k: int(k.split(".")[1]))
    if cuda and torch.cuda.is_available():
        for i, key in enumerate(cuda[: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(tensors[key], i)
    if "numpy" in meta:
        import numpy as np

        name, keys, pos, has_gauss, cached = meta["numpy"]
        np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
