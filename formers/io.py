"""Save and load models: a folder with config.json, model.safetensors and tokenizer.json.

`load` also accepts a run directory (it picks the latest complete checkpoint) and, once
the interop layer knows the family, a Hugging Face checkpoint folder.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from formers.errors import CheckpointError, ConfigError, ShapeMismatchError
from formers.registry import build_model, model_config_from_dict

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
_FIX = "re-save it or pick another checkpoint"
DIGEST_KEY = "formers.sha256"  # safetensors header metadata: a digest of every tensor's name, dtype, shape, bytes


def tensor_digest(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 over the tensors in name order, so a flipped byte anywhere in the data is caught on load
    (safetensors itself checks only that the header and the file size agree)."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(memoryview(t.view(-1).view(torch.uint8).numpy()) if t.numel() else b"")
    return h.hexdigest()


def write_safetensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """save_file with the tensors' digest in the header (the caller makes the write atomic)."""
    save_file(tensors, str(path), metadata={**(metadata or {}), DIGEST_KEY: tensor_digest(tensors)})


def unique_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """State dict without the second name of tied weights (safetensors refuses shared storage)."""
    seen: set[int] = set()
    out = {}
    for name, tensor in model.state_dict().items():
        key = tensor.untyped_storage().data_ptr() if tensor.numel() else id(tensor)
        if key in seen:
            continue
        seen.add(key)
        out[name] = tensor.detach().contiguous()
    return out


def save_model(model: nn.Module, folder: str | Path, tokenizer=None, *, state: dict | None = None) -> None:
    """Write config.json (with the family name), model.safetensors and, if given, tokenizer.json.

    `state` replaces the model's own weights (the Trainer passes fp32 master weights, or FSDP shards
    gathered into full tensors)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / CONFIG_FILE).write_text(json.dumps(model.config.to_dict(), indent=2, sort_keys=True))
    weights = unique_state_dict(model) if state is None else {k: v.contiguous() for k, v in state.items()}
    write_safetensors(folder / WEIGHTS_FILE, weights, metadata={"format": "pt", "family": model.family})
    if tokenizer is not None:
        tokenizer.save(folder)


def load_weights(model: nn.Module, state: dict[str, torch.Tensor], *, source: str) -> None:
    """Copy `state` into `model`, refusing any missing, unexpected or mismatched key."""
    own = model.state_dict()
    tied = set(own) - set(unique_state_dict(model))
    missing = sorted(set(own) - set(state) - tied)
    unexpected = sorted(set(state) - set(own))
    mismatched = sorted(
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in set(state) & set(own)
        if state[k].shape != own[k].shape
    )
    if missing or unexpected or mismatched:
        raise ShapeMismatchError(
            f"weights in {source} do not fit {type(model).__name__}: missing {missing}, unexpected {unexpected}, "
            f"mismatched {mismatched}; check that the checkpoint and the config describe the same model"
        )
    model.load_state_dict(state, strict=False)


def read_config(folder: Path) -> dict:
    path = folder / CONFIG_FILE
    if not path.is_file():
        raise CheckpointError(f"{folder} has no {CONFIG_FILE}; pass a checkpoint folder written by formers")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path} is not valid JSON ({e}); the checkpoint is corrupt") from None


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """Every tensor of a safetensors file on the CPU; files formers wrote are checked against their digest."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} is missing; the checkpoint is incomplete: {_FIX}")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            names = f.keys()
            tensors = {name: f.get_tensor(name) for name in names}
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{path} is truncated or corrupt ({e}); {_FIX}") from None
    expected = metadata.get(DIGEST_KEY)
    if expected is not None and tensor_digest(tensors) != expected:
        raise CheckpointError(f"{path} is corrupt: its tensor data does not match the checksum written with it; {_FIX}")
    return tensors


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint folder, or a run directory whose latest complete checkpoint is used."""
    from formers.training.checkpoint import latest_checkpoint

    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path} does not exist; pass a checkpoint folder or a run directory")
    if (path / CONFIG_FILE).is_file():
        return path
    latest = latest_checkpoint(path)
    if latest is None:
        raise CheckpointError(f"{path} holds no complete checkpoint (no {CONFIG_FILE}, no step-* folder)")
    return latest


def load(path: str | Path, *, device: str | torch.device = "cpu") -> nn.Module:
    """Load a model from a formers checkpoint folder, a run directory or a Hugging Face folder."""
    folder = resolve_checkpoint(path)
    data = read_config(folder)
    if "family" not in data:
        from formers.interop import hf  # a Hugging Face config.json names its model_type instead

        return hf.load_hf(folder).to(device)
    try:
        config = model_config_from_dict(data, where=f"{folder / CONFIG_FILE}")
    except ConfigError as e:
        raise CheckpointError(str(e)) from None
    model = build_model(config)
    load_weights(model, read_weights(folder / WEIGHTS_FILE), source=str(folder / WEIGHTS_FILE))
    return model.to(device).eval()


def load_tokenizer(path: str | Path):
    """The tokenizer stored beside a checkpoint's weights (a Hugging Face folder's too)."""
    from formers.data.tokenizers import Tokenizer

    folder = resolve_checkpoint(path)
    if "family" not in read_config(folder):
        from formers.interop.hf import load_hf_tokenizer

        return load_hf_tokenizer(folder)
    return Tokenizer.load(folder)
