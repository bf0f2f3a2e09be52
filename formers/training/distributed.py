"""Multi-process training on PyTorch's own engine, launched by torchrun: DDP or FSDP2.

torchrun starts one process per device and sets RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR and
MASTER_PORT; `setup` joins the process group they describe (NCCL on GPUs, gloo on CPUs). The
rest is what the Trainer needs to stay one loop: a `Strategy` per mode wraps the model, skips
the gradient all-reduce on accumulation micro-batches, and moves full (unsharded) weights and
optimizer state in and out of a checkpoint; `all_sum` and `gather` carry metrics and RNG states.

Modes (`trainer.distributed`):
  none  one process.
  ddp   every rank holds the whole model; gradients are averaged by bucketed all-reduces that
        overlap the backward pass (Li et al. 2020, "PyTorch Distributed").
  fsdp  parameters, gradients and optimizer state are sharded across ranks (FSDP2 `fully_shard`;
        ZeRO-3, Rajbhandari et al. 2020): each Block is all-gathered just before it runs and freed after.

Checkpoints are the same files in every mode: one gathered model.safetensors and an optimizer
state keyed by parameter index. We chose the gathered file over torch.distributed.checkpoint
(DCP) because DCP writes one shard per rank plus a pickled `.metadata`, and formers never
unpickles; a gathered file also resumes under any mode and world size and is read as-is by
`formers.load`, `generate`, `eval` and `convert`. The cost is that rank 0 holds the full model and
optimizer state in CPU memory while saving (16 bytes per parameter with AdamW: ~2 GB at 124M),
which is fine up to a few billion parameters; past that, DCP's sharded save is the tool.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any, Literal

import torch
import torch.distributed as dist
from torch import nn

from formers.errors import ConfigError, ShapeMismatchError
from formers.nn.blocks import Block
from formers.storage import load_weights, unique_state_dict

Mode = Literal["none", "ddp", "fsdp"]


# ---- rank helpers: world_size/rank read torchrun's environment, so data can be sharded before the group exists
# ---- (and stay so after it is gone); group_size/group_rank describe the live group that collectives span.
def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else int(os.environ.get("WORLD_SIZE", 1))


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else int(os.environ.get("RANK", 0))


def group_size() -> int:
    """Processes in the live process group (1 before `setup` and after `teardown`): what collectives span."""
    return dist.get_world_size() if dist.is_initialized() else 1


def group_rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def local_rank() -> int:
    """This process's index on its machine (its GPU)."""
    return int(os.environ.get("LOCAL_RANK", 0))


def is_main() -> bool:
    """Rank 0: the one process that logs, prints and writes files."""
    return rank() == 0


def setup(mode: Mode, device: torch.device) -> tuple[torch.device, bool]:
    """Join the process group torchrun describes; returns (this rank's device, whether this call created it).

    A single process (no torchrun, or --nproc_per_node=1) needs no group: every mode then trains as `none`.
    """
    n = world_size()
    if n == 1:
        return device, False
    if mode == "none":
        raise ConfigError(
            f"{n} processes were launched (WORLD_SIZE={n}) but trainer.distributed=none: each would train the "
            "same model and write the same files; set --trainer.distributed=ddp or --trainer.distributed=fsdp"
        )
    if device.type == "cuda":
        device = torch.device("cuda", local_rank())  # one GPU per process
        torch.cuda.set_device(device)
    if dist.is_initialized():
        return device, False
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device, True


def teardown() -> None:
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def all_sum(values: torch.Tensor) -> torch.Tensor:
    """Sum a tensor over ranks (gloo has no AVG op, so callers divide)."""
    if dist.is_initialized():
        values = values.clone()
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def gather(obj: Any) -> list[Any]:
    """Every rank's `obj`, in rank order, on rank 0 (others get []). Travels over the wire, never to disk."""
    if not dist.is_initialized():
        return [obj]
    out = [None] * dist.get_world_size() if is_main() else None
    dist.gather_object(obj, out, dst=0)
    return out or []


def scalar(t: torch.Tensor) -> torch.Tensor:
    """A plain tensor from what `clip_grad_norm_` returns (a replicated DTensor under FSDP)."""
    from torch.distributed.tensor import DTensor

    return t.full_tensor() if isinstance(t, DTensor) else t


def tied(model: nn.Module) -> dict[str, str]:
    """Second name -> first name of each shared parameter (a tied LM head): files hold it once, as the first."""
    first: dict[int, str] = {}
    out = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        if id(p) in first:
            out[name] = first[id(p)]
        first.setdefault(id(p), name)
    return out


# ---- strategies: one per mode, chosen once when the Trainer is built ------------------------------------------
class Single:
    """One process (or a rank of DDP: every rank holds the whole model and the same optimizer state)."""

    name: Mode = "none"

    def wrap(self, model: nn.Module) -> nn.Module:
        return model

    def gradient_sync(self, model: nn.Module, enabled: bool) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()

    def model_state(self, model: nn.Module) -> dict[str, torch.Tensor]:
        return unique_state_dict(model)

    def load_model_state(self, model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
        load_weights(model, state, source=source)

    def optimizer_state(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> dict:
        return optimizer.state_dict()

    def load_optimizer_state(self, model: nn.Module, optimizer: torch.optim.Optimizer, state: dict) -> None:
        optimizer.load_state_dict(state)


class DDP(Single):
    """DistributedDataParallel; checkpoints as in one process (rank 0 writes what every rank holds)."""

    name: Mode = "ddp"

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def wrap(self, model: nn.Module) -> nn.Module:
        from torch.nn.parallel import DistributedDataParallel

        # Our buffers are constant tables (positions): no per-forward broadcast, so evaluation may run
        # different numbers of batches per rank without a collective.
        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids, forward_sync_buffers=False)

    @contextlib.contextmanager
    def gradient_sync(self, model: nn.Module, enabled: bool) -> Iterator[None]:
        with contextlib.nullcontext() if enabled else model.no_sync():
            yield


class FSDP:
    """FSDP2: each Block, then the root, is `fully_shard`ed; state moves as full tensors on rank 0.

    `param_dtype=torch.bfloat16` is FSDP's own pure-bf16 training: the fp32 shards are the master
    weights, all-gathered as bf16 for compute, with gradients reduced in fp32.
    """

    name: Mode = "fsdp"

    def __init__(self, param_dtype: torch.dtype | None = None) -> None:
        self.param_dtype = param_dtype

    def wrap(self, model: nn.Module) -> nn.Module:
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

        for tensor in [*model.parameters(), *model.buffers()]:  # every rank starts from rank 0's weights
            dist.broadcast(tensor.data, src=0)
        policy = MixedPrecisionPolicy(param_dtype=self.param_dtype, reduce_dtype=torch.float32)
        for module in model.modules():
            if isinstance(module, Block):
                fully_shard(module, mp_policy=policy)
        fully_shard(model, mp_policy=policy)
        return model

    @contextlib.contextmanager
    def gradient_sync(self, model: nn.Module, enabled: bool) -> Iterator[None]:
        model.set_requires_gradient_sync(enabled)  # off: keep unsharded grads until the last micro-batch
        yield

    def model_state(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """Full CPU tensors on rank 0 (an empty dict elsewhere); a collective every rank must call."""
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        second = tied(model)
        return {k: v for k, v in state.items() if k not in second}

    def load_model_state(self, model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

        # the file holds a tied tensor once; the module wants it under both names
        full = {**state, **{second: state[first] for second, first in tied(model).items() if first in state}}
        try:
            set_model_state_dict(model, full, options=StateDictOptions(full_state_dict=True, strict=True))
        except (RuntimeError, KeyError) as e:
            raise ShapeMismatchError(
                f"weights in {source} do not fit {type(model).__name__} ({e}); check that the checkpoint and the "
                "config describe the same model"
            ) from None

    def optimizer_state(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> dict:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

        options = StateDictOptions(full_state_dict=True, cpu_offload=True)
        state = get_optimizer_state_dict(model, optimizer, options=options)
        return by_index(state) if state else {}

    def load_optimizer_state(self, model: nn.Module, optimizer: torch.optim.Optimizer, state: dict) -> None:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

        names = {id(p): n for n, p in model.named_parameters()}
        order = [names[id(p)] for group in optimizer.param_groups for p in group["params"]]
        options = StateDictOptions(full_state_dict=True)
        set_optimizer_state_dict(model, optimizer, optim_state_dict=by_name(state, order), options=options)


Strategy = Single | DDP | FSDP


def make_strategy(mode: Mode, device: torch.device, *, bf16_params: bool = False) -> Strategy:
    """The strategy for `mode` in this launch (one process trains as `none` whatever the mode)."""
    if world_size() == 1 or mode == "none":
        return Single()
    if mode == "ddp":
        return DDP(device)
    return FSDP(torch.bfloat16 if bf16_params else None)


# ---- optimizer state: DSD keys it by parameter name, torch's own layout (and our files) by index ------------
def by_index(state: dict) -> dict:
    """Name-keyed optimizer state -> torch's layout: parameters numbered across groups, in order."""
    index: dict[str, int] = {}
    groups = []
    for group in state["param_groups"]:
        groups.append({**group, "params": [index.setdefault(name, len(index)) for name in group["params"]]})
    return {"state": {index[name]: v for name, v in state["state"].items()}, "param_groups": groups}


def by_name(state: dict, order: list[str]) -> dict:
    """Inverse of `by_index`, given the parameter names in the optimizer's order."""
    groups = [{**group, "params": [order[i] for i in group["params"]]} for group in state["param_groups"]]
    return {"state": {order[int(i)]: v for i, v in state["state"].items()}, "param_groups": groups}
