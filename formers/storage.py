"""Storage: files and folders on disk, below everything that knows what a model is.

Tensors go into safetensors (never pickle), the rest into JSON. Every write is atomic: a
temporary file (or folder) beside the final name, fsynced, then renamed into place, so a
process killed mid-write leaves nothing that looks complete. Every safetensors file formers
writes carries a SHA-256 of its tensors in its header, checked when it is read back
(safetensors itself checks only that the header and the file size agree).

A checkpoint is a folder `step-XXXXXXXX` holding config.json (with the model's "family"),
model.safetensors, tokenizer.json and whatever a trainer adds, marked COMPLETE last.
Training, interop, adapters and `formers.load` all read and write through this module; it
imports nothing of formers but the errors.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from formers.errors import CheckpointError, ShapeMismatchError

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
COMPLETE = "COMPLETE"  # marker written last: a folder without it is never a checkpoint
TMP_PREFIX = ".tmp-"
DIGEST_KEY = "formers.sha256"  # safetensors header metadata: a digest of every tensor's name, dtype, shape, bytes
_NAME = re.compile(r"^step-(\d{8,})$")  # 8 digits sort by name too; longer runs just grow a digit
_FIX = "re-save it or pick another checkpoint"


# ---- atomic writes ----------------------------------------------------------------------
def _fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    # Makes renames and new entries durable. Some filesystems refuse fsync on a folder: best effort.
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _tmp_path(final: Path) -> Path:
    return final.parent / f"{TMP_PREFIX}{final.name}-{secrets.token_hex(4)}"


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_file(path: Path) -> Iterator[Path]:
    """Yield a temporary file name beside `path`; on success it is fsynced and renamed onto `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_path(path)
    try:
        yield tmp
        _fsync_file(tmp)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_write_dir(final: Path) -> Iterator[Path]:
    """Yield a temporary folder beside `final`; on a clean exit it becomes `final` in one rename.

    On an exception (or Ctrl-C) the temporary folder is removed and the error re-raised;
    an existing `final` is then left untouched.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_path(final)
    tmp.mkdir()  # not tempfile.mkdtemp: that forces mode 0700, and checkpoints should follow the umask
    try:
        yield tmp
        for path in sorted(tmp.rglob("*")):
            if path.is_file():
                _fsync_file(path)
            elif path.is_dir():
                _fsync_dir(path)
        (tmp / COMPLETE).write_text("ok\n")
        _fsync_file(tmp / COMPLETE)
        _fsync_dir(tmp)
        _replace_dir(tmp, final)
        _fsync_dir(final.parent)
    except BaseException:
        _remove(tmp)
        raise


def _replace_dir(tmp: Path, final: Path) -> None:
    # os.replace cannot overwrite a non-empty folder, and deleting `final` in place could leave a
    # half-deleted folder that still holds COMPLETE. So the old one is first renamed to a `.tmp-`
    # name (atomic, and never listed as a checkpoint), then deleted at leisure.
    old = None
    if final.exists() or final.is_symlink():
        old = _tmp_path(final.with_name(f"old-{final.name}"))
        os.replace(final, old)
    try:
        os.replace(tmp, final)
    except BaseException:
        if old is not None:
            os.replace(old, final)  # put the previous checkpoint back
        raise
    if old is not None:
        _remove(old)


def write_text(path: Path, text: str) -> None:
    """Write `text` (UTF-8) to `path`, atomically."""
    with atomic_file(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: Path, obj: Any) -> None:
    """Write `obj` as JSON (sorted keys, indent 2), atomically."""
    text = json.dumps(obj, indent=2, sort_keys=True) + "\n"  # serialise first: a TypeError writes nothing
    write_text(path, text)


def read_json(path: Path) -> Any:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} is missing; the checkpoint is incomplete: {_FIX}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise CheckpointError(f"{path} is not valid JSON ({e}); {_FIX}") from None


# ---- safetensors ------------------------------------------------------------------------
def tensor_digest(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 over the tensors in name order, so a flipped byte anywhere in the data is caught on load."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(memoryview(t.view(-1).view(torch.uint8).numpy()) if t.numel() else b"")
    return h.hexdigest()


def _own_storage(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Detached, contiguous tensors, none sharing storage (safetensors refuses shared memory).

    Only tensors whose storage was already seen are cloned (views, optimizer states), so saving
    does not double the memory.
    """
    out, seen = {}, set()
    for name, t in tensors.items():
        t = t.detach().contiguous()
        storage = (t.device, t.untyped_storage().data_ptr())
        if t.numel() and storage in seen:
            t = t.clone()
        seen.add((t.device, t.untyped_storage().data_ptr()))
        out[name] = t
    return out


def save_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """The one safetensors writer: `tensors` and their digest to `path`, atomically.

    `metadata` is free-form text kept in the file's header (`read_metadata` returns it).
    """
    path = Path(path)
    tensors = _own_storage(tensors)
    header = {**(metadata or {}), DIGEST_KEY: tensor_digest(tensors)}
    try:
        with atomic_file(path) as tmp:
            save_file(tensors, str(tmp), metadata=header)
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"could not write {path} ({e}); check free disk space and permissions") from None


def _open(path: Path, read: Callable) -> Any:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} is missing; the checkpoint is incomplete: {_FIX}")
    try:
        with safe_open(str(path), framework="pt") as f:
            return read(f)
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{path} is truncated or corrupt ({e}); {_FIX}") from None


def _metadata_and_tensors(f) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    names = f.keys()  # a safe_open handle is not iterable
    return f.metadata() or {}, {name: f.get_tensor(name) for name in names}


def read_metadata(path: Path) -> dict[str, str]:
    """The free-form header metadata of a safetensors file (without reading its tensors)."""
    return _open(path, lambda f: f.metadata() or {})


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    """Every tensor of a safetensors file on the CPU; files formers wrote are checked against their digest.

    Files from other tools (Hugging Face checkpoints) carry no digest and are read as they are.
    """
    metadata, tensors = _open(path, _metadata_and_tensors)
    expected = metadata.get(DIGEST_KEY)
    if expected is not None and tensor_digest(tensors) != expected:
        raise CheckpointError(f"{path} is corrupt: its tensor data does not match the checksum written with it; {_FIX}")
    return tensors


# ---- step folders -----------------------------------------------------------------------
def checkpoint_name(step: int) -> str:
    """'step-00000042': zero-padded so that folder listings sort by step."""
    if step < 0:
        raise ValueError(f"step={step} must be >= 0")
    return f"step-{step:08d}"


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Complete step-XXXXXXXX folders of `run_dir`, oldest first (`.tmp-*` and unmarked ones are skipped)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    found = [p for p in run_dir.iterdir() if _NAME.match(p.name) and p.is_dir() and (p / COMPLETE).is_file()]
    return sorted(found, key=lambda p: int(_NAME.match(p.name).group(1)))


def latest_checkpoint(run_dir: Path) -> Path | None:
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def remove_checkpoint(folder: Path) -> None:
    """Delete a checkpoint folder, its COMPLETE marker first: a deletion cut short leaves no half checkpoint."""
    folder = Path(folder)
    (folder / COMPLETE).unlink(missing_ok=True)
    _fsync_dir(folder)
    _remove(folder)


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint folder (it holds config.json), or a run directory whose latest complete checkpoint is used."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path} does not exist; pass a checkpoint folder or a run directory")
    if (path / CONFIG_FILE).is_file():
        return path
    latest = latest_checkpoint(path)
    if latest is None:
        raise CheckpointError(f"{path} holds no complete checkpoint (no {CONFIG_FILE}, no step-* folder)")
    return latest


# ---- a model's folder: config.json + model.safetensors (+ tokenizer) -----------------------
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
    """Write config.json (with the family name), model.safetensors and, if given, the tokenizer.

    `state` replaces the model's own weights (the Trainer passes fp32 master weights, or FSDP shards
    gathered into full tensors)."""
    folder = Path(folder)
    config = model.config.to_dict()
    write_json(folder / CONFIG_FILE, config)
    weights = unique_state_dict(model) if state is None else state
    save_tensors(folder / WEIGHTS_FILE, weights, metadata={"format": "pt", "family": config["family"]})
    if tokenizer is not None:
        tokenizer.save(folder)


def read_config(folder: Path) -> dict:
    """A checkpoint's config.json (formers' or Hugging Face's) as a dict."""
    path = Path(folder) / CONFIG_FILE
    if not path.is_file():
        raise CheckpointError(f"{folder} has no {CONFIG_FILE}; pass a checkpoint folder written by formers")
    return read_json(path)


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


def load_model_weights(model: nn.Module, folder: Path) -> nn.Module:
    """A checkpoint folder's model.safetensors into `model` (refusing any mismatch); returns the model."""
    file = Path(folder) / WEIGHTS_FILE
    load_weights(model, read_tensors(file), source=str(file))
    return model
