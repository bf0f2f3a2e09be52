"""Checkpoint folders: safetensors for tensors, JSON for the rest, never pickle.

A checkpoint is written into a `.tmp-*` folder beside its final name, fsynced, marked
COMPLETE and renamed into place, so a process killed mid-write leaves nothing that looks
like a checkpoint. Single files are written the same way (temp file, fsync, rename).
Optimizer and RNG states are split into tensors (safetensors) and plain data (JSON) so
that a resumed run continues bit for bit.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError

from formers.errors import CheckpointError, ShapeMismatchError
from formers.io import read_weights, write_safetensors

COMPLETE = "COMPLETE"  # marker written last: a folder without it is never a checkpoint
TMP_PREFIX = ".tmp-"
_NAME = re.compile(r"^step-(\d{8,})$")  # 8 digits sort by name too; longer runs just grow a digit
_FIX = "re-save it or pick another checkpoint"


def checkpoint_name(step: int) -> str:
    """'step-00000042': zero-padded so that folder listings sort by step."""
    if step < 0:
        raise ValueError(f"step={step} must be >= 0")
    return f"step-{step:08d}"


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


@contextlib.contextmanager
def _atomic_file(path: Path) -> Iterator[Path]:
    """Yield a temporary file name beside `path`; on success it is fsynced and renamed onto `path`."""
    path = Path(path)
    tmp = _tmp_path(path)
    try:
        yield tmp
        _fsync_file(tmp)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# ---- listing ----------------------------------------------------------------------------
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


# ---- JSON and safetensors files ---------------------------------------------------------
def write_json(path: Path, obj: Any) -> None:
    """Write `obj` as JSON (sorted keys, indent 2), atomically."""
    text = json.dumps(obj, indent=2, sort_keys=True) + "\n"  # serialise first: a TypeError writes nothing
    with _atomic_file(path) as tmp:
        tmp.write_text(text)


def read_json(path: Path) -> Any:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} is missing; the checkpoint is incomplete: {_FIX}")
    try:
        return json.loads(path.read_text())
    except (ValueError, OSError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise CheckpointError(f"{path} is not valid JSON ({e}); {_FIX}") from None


def _own_storage(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Detached, contiguous tensors, none sharing storage (safetensors refuses shared memory).

    Only tensors whose storage was already seen are cloned (tied embeddings, views), so saving a
    model does not double its memory.
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
    """Write `tensors` to a safetensors file, atomically; `metadata` is free-form text in its header."""
    path = Path(path)
    try:
        with _atomic_file(path) as tmp:
            write_safetensors(tmp, _own_storage(tensors), metadata=metadata)
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"could not write {path} ({e}); check free disk space and permissions") from None


load_tensors = read_weights  # every safetensors file, checkpoint part or model, is read (and checked) one way


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
