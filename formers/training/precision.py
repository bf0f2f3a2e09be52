"""Training precision: fp32, bf16 autocast, or a pure-bf16 model with fp32 master weights; `auto` picks.

  auto       bf16 where the device computes it natively, fp32 elsewhere (`choose_precision`): a CPU
             without bf16 instructions (most laptops: AVX2 only) emulates every bf16 product and trains
             ~13x slower than in fp32, while AMX or AVX512-BF16 makes bf16 matmuls ~4-6x faster.
  fp32       everything in float32.
  bf16       autocast: weights stay fp32 and each matmul casts its inputs to bf16 (AMX or AVX512-BF16 on
             CPUs, tensor cores on GPUs); norms, softmax and the loss stay fp32. Every forward re-casts
             every weight, and weight gradients are cast back to fp32.
  bf16-pure  the model itself is bf16, so nothing is re-cast; the optimizer updates fp32 master copies
             of the weights and copies them back after each step (Micikevicius et al. 2018, "Mixed
             Precision Training"): small updates that would vanish in bf16's 8-bit mantissa accumulate in
             fp32. bf16 has fp32's exponent range, so no loss scaling is needed. Under FSDP the same idea
             is FSDP's own policy (fp32 shards, bf16 all-gathers; see distributed.FSDP).
"""

from __future__ import annotations

import dataclasses
import functools
import platform
import warnings
from contextlib import nullcontext
from pathlib import Path
from typing import Literal

import torch
from torch import nn

Precision = Literal["auto", "fp32", "bf16", "bf16-pure"]
Resolved = Literal["fp32", "bf16", "bf16-pure"]  # what `auto` becomes

# Issue 11, on a 2-core AMD EPYC with AVX2 only: one bf16 training step of the default recipe took 67 s,
# the same step in fp32 about 5 s.
EMULATED_BF16_COST = ("a training step of the default recipe took 67 s in bf16 against 5 s in fp32 (13x) "
                      "on a 2-core AVX2-only AMD EPYC")


@dataclasses.dataclass(frozen=True, kw_only=True)
class DeviceFacts:
    """What decides the precision, read from the machine once (`probe`); tests build it by hand."""

    type: str  # torch.device.type: "cpu", "cuda", ...
    name: str  # the CPU model (/proc/cpuinfo) or the GPU's name
    capability: str  # CPU: ATen's kernels, torch.backends.cpu.get_cpu_capability() ("AVX2", "AVX512"); GPU: "sm_90"
    bf16_units: str = ""  # CPU instructions that multiply bf16: "AMX", "AVX512-BF16", or "" (none: emulated)
    onednn_bf16: bool = False  # torch.ops.mkldnn._is_mkldnn_bf16_supported(): oneDNN will run its bf16 kernels
    cuda_bf16: bool = False  # torch.cuda.is_bf16_supported(including_emulation=False)


@dataclasses.dataclass(frozen=True)
class PrecisionChoice:
    precision: Resolved
    line: str  # what was chosen and why: printed once when training starts
    warning: str | None = None  # an explicit bf16 the device only emulates


def native_bf16(facts: DeviceFacts) -> bool:
    """Whether bf16 products run on bf16 hardware here rather than being emulated through fp32.

    On a CPU both answers must agree. oneDNN's says what will run (ONEDNN_MAX_CPU_ISA=AVX2 turns it off on
    an AMX machine, which is how an AVX2 laptop is reproduced), but it is yes on every AVX-512 CPU, including
    those without bf16 instructions (Skylake, Cascade Lake), where oneDNN converts to fp32 and gains nothing.
    The instruction flags say what the silicon has (AVX512-BF16 since Cooper Lake and Zen 4, AMX since
    Sapphire Rapids)."""
    if facts.type == "cuda":
        return facts.cuda_bf16
    if facts.type == "cpu":
        return facts.onednn_bf16 and bool(facts.bf16_units)
    return False  # no rule for this device (mps, xpu, ...): fp32 is safe everywhere


def describe(facts: DeviceFacts) -> str:
    """One phrase naming the device and what it does with bf16, for logs and benchmark headers."""
    if facts.type == "cpu":
        units = facts.bf16_units or "none"
        return (f"cpu {facts.name!r}, kernels {facts.capability}, bf16 instructions {units}, "
                f"oneDNN bf16 {'on' if facts.onednn_bf16 else 'off'}")
    if facts.type == "cuda":
        return f"cuda {facts.name!r} ({facts.capability}), native bf16 {'yes' if facts.cuda_bf16 else 'no'}"
    return f"{facts.type} {facts.name!r}"


def choose_precision(requested: Precision, facts: DeviceFacts) -> PrecisionChoice:
    """Resolve `auto`, and say why; an explicit bf16 that would be emulated comes with a warning."""
    native = native_bf16(facts)
    if requested == "auto":
        precision: Resolved = "bf16" if native else "fp32"
        reason = "bf16 is native here" if native else "bf16 would be emulated here"
        line = f"precision: auto -> {precision} ({reason}; {describe(facts)})"
    else:
        precision = requested
        line = f"precision: {requested} (set explicitly; {describe(facts)})"
    warning = None
    if precision != "fp32" and not native:
        warning = (f"precision {requested} on a device without native bf16 ({describe(facts)}): bf16 is emulated "
                   f"and slow ({EMULATED_BF16_COST}); set trainer.precision to auto or fp32")
    return PrecisionChoice(precision, line, warning)


def probe(device: torch.device) -> DeviceFacts:
    """Read the facts `choose_precision` needs from this machine."""
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return DeviceFacts(type="cuda", name=props.name, capability=f"sm_{props.major}{props.minor}",
                           cuda_bf16=torch.cuda.is_bf16_supported(including_emulation=False))
    if device.type == "cpu":
        return cpu_facts()
    return DeviceFacts(type=device.type, name=device.type, capability="")


@functools.cache
def cpu_facts() -> DeviceFacts:
    # torch.cpu's flags come from cpuinfo (what the silicon has); private, hence the guarded lookups.
    def flag(name: str) -> bool:
        return bool(getattr(torch.cpu, name, lambda: False)())

    units = "AMX" if flag("_is_amx_tile_supported") else "AVX512-BF16" if flag("_is_avx512_bf16_supported") else ""
    return DeviceFacts(type="cpu", name=cpu_name(), capability=torch.backends.cpu.get_cpu_capability(),
                       bf16_units=units, onednn_bf16=bool(torch.ops.mkldnn._is_mkldnn_bf16_supported()))


def cpu_name() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), else what `platform` knows."""
    info = Path("/proc/cpuinfo")
    if info.is_file():
        for line in info.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown CPU"


_WARNED: set[str] = set()


def warn_once(message: str) -> None:
    """Warn once per process (every Trainer of a study would repeat it otherwise)."""
    if message not in _WARNED:
        _WARNED.add(message)
        warnings.warn(message, RuntimeWarning, stacklevel=3)


def autocast(precision: Resolved, device: torch.device):
    """The context every forward of the Trainer runs in."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()


class MasterWeights:
    """fp32 copies of a bf16 model's trainable weights: the optimizer sees only these."""

    def __init__(self, model: nn.Module, groups: list[dict]) -> None:
        self.model = model
        self.params = [p for g in groups for p in g["params"]]  # the model's own, soon bf16
        self.master = [p.detach().float().clone().requires_grad_(p.requires_grad) for p in self.params]
        twin = {id(p): m for p, m in zip(self.params, self.master, strict=True)}
        self.groups = [{**g, "params": [twin[id(p)] for p in g["params"]]} for g in groups]
        name_of = {id(p): n for n, p in model.named_parameters()}
        self.names = {id(m): name_of[id(p)] for p, m in zip(self.params, self.master, strict=True)}
        model.to(torch.bfloat16)  # in place: the same Parameter objects, now bf16

    @torch.no_grad()
    def grads_to_master(self) -> None:
        """After backward: the bf16 gradients, widened, become the masters' gradients."""
        for p, m in zip(self.params, self.master, strict=True):
            m.grad = None if p.grad is None else p.grad.float()
            p.grad = None

    @torch.no_grad()
    def master_to_model(self) -> None:
        """After the optimizer step: round the updated masters into the bf16 model."""
        torch._foreach_copy_(self.params, self.master)

    def state(self) -> dict[str, torch.Tensor]:
        """name -> fp32 master: what a checkpoint stores instead of the rounded bf16 weights."""
        return {self.names[id(m)]: m.detach() for m in self.master}

    @torch.no_grad()
    def load(self, state: dict[str, torch.Tensor]) -> None:
        for m in self.master:
            m.copy_(state[self.names[id(m)]])
        self.master_to_model()

    @torch.no_grad()
    def restore(self) -> None:
        """Put the model back in fp32 with the exact master values (at the end of training)."""
        self.model.float()
        torch._foreach_copy_(self.params, self.master)
