"""Which parameters train, and how fast: freezing, layer groups, gradual unfreezing, layer-wise LR.

- Feature extraction: `freeze(model.trunk)`; only the new head trains.
- Layer groups, bottom to top: [embeddings, block 0, ..., block N-1, top], where "top" is
  everything after the last block (final norm, pooler, pretraining heads, the new task head).
- Gradual unfreezing (Howard & Ruder 2018, ULMFiT): train the top group first, open one more
  group below every `every` steps; a Trainer callback.
- Layer-wise LR decay, a.k.a. discriminative fine-tuning (Howard & Ruder 2018; Clark et al. 2020,
  ELECTRA; Sun et al. 2019): group g of G gets lr * decay ** (G - 1 - g), so the embeddings, which
  hold the most general features, move least. The new head can have its own LR and warmup
  (`head_lr`, `head_warmup`), applied by the `group_warmup` callback.

Optimizer groups built here list EVERY parameter, frozen ones included: a frozen parameter has
no gradient, so AdamW skips it entirely (no update, no weight decay: it stays bit-identical), and
when a callback later unfreezes it, it is already in the optimizer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from torch import nn

from formers.config import check
from formers.errors import ConfigError
from formers.nn.blocks import Block


def freeze(module: nn.Module) -> nn.Module:
    """requires_grad=False on every parameter of `module` (a trunk, a block, a whole model); returns it."""
    for p in module.parameters():
        p.requires_grad_(False)
    return module


def unfreeze(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        p.requires_grad_(True)
    return module


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters, tied weights counted once."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def layer_groups(model: nn.Module) -> list[list[str]]:
    """Parameter names in groups from the bottom up: [embeddings, block 0 .. block N-1, top].

    Blocks are the `formers.nn.Block` modules, in registration order (the forward order of every
    formers model). Parameters before the first block form the embeddings group, those after the
    last block the top group; anything between two blocks (an encoder's final norm) joins the
    block before it.
    """
    block_of: dict[str, int] = {}
    blocks = [name for name, m in model.named_modules() if isinstance(m, Block)]
    if not blocks:
        raise ConfigError(f"{type(model).__name__} holds no formers.nn.Block: layer groups, gradual unfreezing and "
                          "layer-wise LR need a model built from formers blocks")
    for i, prefix in enumerate(blocks):
        for name, _ in model.get_submodule(prefix).named_parameters(prefix=prefix):
            block_of[name] = i
    groups: list[list[str]] = [[] for _ in range(len(blocks) + 2)]
    current = 0  # group of the last parameter seen: 0 = embeddings until the first block
    for name, _ in model.named_parameters():
        if name in block_of:
            current = block_of[name] + 1
        elif current == len(blocks):  # past the last block's own parameters
            current = len(blocks) + 1
        groups[current].append(name)
    return groups


def group_names(n_groups: int) -> list[str]:
    return ["embeddings", *[f"block {i}" for i in range(n_groups - 2)], "top"]


class GradualUnfreezing:
    """Trainer callback: group k from the top (k = 0 is the top group) opens at step schedule[k].

    `every=n` opens the top group at step 0 and one more group every n steps; or give the
    `schedule` of open steps, top group first. Groups past the end of the schedule stay frozen.
    The callback runs after backward and before the optimizer step, so a group opened at
    step s - 1 first receives gradients at step s: it opens groups due at `trainer.step + 1`.
    It schedules the parameters trainable when it is built; ones frozen before stay frozen.
    """

    def __init__(self, model: nn.Module, *, every: int | None = None, schedule: Sequence[int] | None = None,
                 groups: list[list[str]] | None = None) -> None:
        self.params = {name: p for name, p in model.named_parameters() if p.requires_grad}
        groups = groups if groups is not None else layer_groups(model)
        self.groups = [[name for name in g if name in self.params] for g in groups]  # frozen before: stay frozen
        n = len(self.groups)
        if (every is None) == (schedule is None):
            raise ConfigError("GradualUnfreezing needs exactly one of every=N (steps between groups) or "
                              f"schedule=[open steps, top group first]; got every={every!r}, schedule={schedule!r}")
        if every is not None:
            check(every > 0, "GradualUnfreezing.every", every, "a positive number of steps")
            schedule = [k * every for k in range(n)]
        schedule = list(schedule)
        if len(schedule) > n:
            raise ConfigError(f"GradualUnfreezing.schedule lists {len(schedule)} groups but the model has {n} "
                              f"({', '.join(group_names(n))}); give at most {n} open steps")
        check(schedule == sorted(schedule) and all(s >= 0 for s in schedule), "GradualUnfreezing.schedule",
              schedule, "non-negative, non-decreasing steps (top group first)")
        self.schedule = schedule
        self._apply(0)
        self._checked = False

    def open_groups(self, step: int) -> list[int]:
        """Indices (bottom-up, as in `layer_groups`) of the groups that train at optimizer step `step`."""
        n = len(self.groups)
        return sorted(n - 1 - k for k, start in enumerate(self.schedule) if start <= step)

    def _apply(self, step: int) -> None:
        open_now = set(self.open_groups(step))
        for g, names in enumerate(self.groups):
            for name in names:
                self.params[name].requires_grad_(g in open_now)

    def __call__(self, trainer) -> None:
        if not self._checked:  # a group missing from the optimizer would silently never train
            in_optimizer = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
            missing = [n for n, p in self.params.items() if id(p) not in in_optimizer]
            if missing:
                raise ConfigError(f"{len(missing)} parameters (e.g. {missing[0]}) are not in the optimizer, so "
                                  "unfreezing them would do nothing: pass param_groups_fn=layerwise_lr(lr, decay=1.0) "
                                  "to the Trainer, which lists frozen parameters too")
            self._checked = True
        self._apply(trainer.step + 1)


def _split_decay(named: Iterable[tuple[str, nn.Parameter]], weight_decay: float, **extra) -> list[dict]:
    """Matrices get weight decay, vectors (biases, norms) do not: the nanoGPT rule of optim.param_groups."""
    named = list(named)
    matrices = [p for _, p in named if p.ndim >= 2]
    vectors = [p for _, p in named if p.ndim < 2]
    return [{"params": matrices, "weight_decay": weight_decay, **extra},
            {"params": vectors, "weight_decay": 0.0, **extra}]


def layerwise_lr(lr: float, decay: float = 1.0, *, weight_decay: float = 0.0, head: Sequence[str] = (),
                 head_lr: float | None = None, head_warmup: int = 0, warmup: int = 0,
                 ) -> Callable[[nn.Module], list[dict]]:
    """A Trainer `param_groups_fn`: per-layer LR lr * decay ** depth-from-top, the head apart.

    `head`: name prefixes of the new task head's parameters (e.g. ("head",) for formers heads);
    they get `head_lr` (default `lr`) and warm up over `head_warmup` steps, the rest over
    `warmup` steps (needs the `group_warmup` callback). decay=1.0 gives one LR for all layers.
    """
    check(lr > 0, "layerwise_lr.lr", lr, "a positive float")
    check(0 < decay <= 1, "layerwise_lr.decay", decay, "a value in (0, 1]")

    def build(model: nn.Module) -> list[dict]:
        params = dict(model.named_parameters())
        is_head = {n for n in params if any(n == h or n.startswith(h + ".") for h in head)}
        for h in head:
            if not any(n == h or n.startswith(h + ".") for n in params):
                raise ConfigError(f"layerwise_lr.head prefix {h!r} matches no parameter of {type(model).__name__}; "
                                  f"top-level modules are {sorted({n.split('.')[0] for n in params})}")
        groups = layer_groups(model)
        names = group_names(len(groups))
        out = []
        for g, group in enumerate(groups):
            scale = decay ** (len(groups) - 1 - g)
            named = [(n, params[n]) for n in group if n not in is_head]
            out += _split_decay(named, weight_decay, lr=lr * scale, name=names[g], warmup_steps=warmup)
        named = [(n, params[n]) for n in params if n in is_head]
        out += _split_decay(named, weight_decay, lr=head_lr or lr, name="head", warmup_steps=head_warmup)
        return [g for g in out if g["params"]]

    return build


def group_warmup(trainer) -> None:
    """Trainer callback: scale each param group's LR by min(1, (step + 1) / group["warmup_steps"]).

    The scheduler sets every group's LR afresh after each step (lr = initial lr * schedule), so
    this factor multiplies the global schedule rather than compounding across steps.
    """
    for group in trainer.optimizer.param_groups:
        warmup = group.get("warmup_steps", 0)
        if warmup and trainer.step < warmup:
            group["lr"] *= (trainer.step + 1) / warmup
