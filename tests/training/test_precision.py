"""precision: auto picks bf16 only where the device computes it natively; an emulated bf16 warns once."""

import warnings

import pytest
import torch

from formers.models import GPT, GPTConfig
from formers.objectives import CausalLM
from formers.training import Trainer, TrainerConfig
from formers.training import precision as P
from formers.training.precision import DeviceFacts, choose_precision, native_bf16

# The CPUs that matter, as `probe` would read them.
AMX = DeviceFacts(type="cpu", name="Xeon SPR", capability="AVX512", bf16_units="AMX", onednn_bf16=True)
ZEN4 = DeviceFacts(type="cpu", name="EPYC 9004", capability="AVX512", bf16_units="AVX512-BF16", onednn_bf16=True)
AVX2 = DeviceFacts(type="cpu", name="EPYC 7003", capability="AVX2", bf16_units="", onednn_bf16=False)
# oneDNN says yes on every AVX-512 CPU, but Skylake/Cascade Lake have no bf16 instruction: emulated.
SKYLAKE = DeviceFacts(type="cpu", name="Xeon SKX", capability="AVX512", bf16_units="", onednn_bf16=True)
# An AMX machine started with ONEDNN_MAX_CPU_ISA=AVX2: the silicon has AMX, oneDNN will not use it.
CAPPED = DeviceFacts(type="cpu", name="Xeon SPR", capability="AVX2", bf16_units="AMX", onednn_bf16=False)
A100 = DeviceFacts(type="cuda", name="A100", capability="sm_80", cuda_bf16=True)
T4 = DeviceFacts(type="cuda", name="T4", capability="sm_75", cuda_bf16=False)
MPS = DeviceFacts(type="mps", name="mps", capability="")


@pytest.mark.parametrize(("facts", "expected"), [
    (AMX, "bf16"), (ZEN4, "bf16"), (AVX2, "fp32"), (SKYLAKE, "fp32"), (CAPPED, "fp32"),
    (A100, "bf16"), (T4, "fp32"), (MPS, "fp32"),
], ids=["amx", "avx512-bf16", "avx2", "avx512-no-bf16", "onednn-capped", "a100", "t4", "mps"])
def test_auto_picks_bf16_only_where_it_is_native(facts, expected):
    choice = choose_precision("auto", facts)
    assert choice.precision == expected
    assert choice.warning is None  # auto never picks something slow
    # the line names the choice, the device and the capability it was decided on
    assert choice.line.startswith(f"precision: auto -> {expected} (") and facts.name in choice.line
    assert facts.capability in choice.line
    assert ("bf16 is native here" in choice.line) == (expected == "bf16")


@pytest.mark.parametrize("requested", ["bf16", "bf16-pure"])
def test_explicit_bf16_is_kept_and_warned_about_where_emulated(requested):
    for facts in (AVX2, SKYLAKE, CAPPED, T4):
        choice = choose_precision(requested, facts)
        assert choice.precision == requested
        assert "emulated" in choice.warning and "13x" in choice.warning and "fp32" in choice.warning
    for facts in (AMX, ZEN4, A100):
        assert choose_precision(requested, facts).warning is None


def test_explicit_fp32_never_warns():
    for facts in (AMX, AVX2, A100, MPS):
        choice = choose_precision("fp32", facts)
        assert choice.precision == "fp32" and choice.warning is None


def test_this_machine_is_described_consistently():
    facts = P.probe(torch.device("cpu"))
    assert facts.type == "cpu" and facts.name and facts.capability == torch.backends.cpu.get_cpu_capability()
    assert native_bf16(facts) == (facts.onednn_bf16 and facts.bf16_units != "")


def test_default_is_auto():
    assert TrainerConfig().precision == "auto"


class FixedBatch:
    def __init__(self, batch):
        self.batch = batch

    def next_batch(self):
        return self.batch

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass


def tiny_trainer(tmp_path, precision, **kw):
    model = GPT(GPTConfig(vocab_size=16, d_model=16, n_heads=2, n_layers=1, max_seq_len=8, dropout=0.0))
    ids = torch.randint(0, 16, (2, 9))
    config = TrainerConfig(precision=precision, max_steps=1, tensorboard=False, eval_every=0, **kw)
    return Trainer(model, CausalLM(), FixedBatch({"input_ids": ids[:, :-1], "labels": ids[:, 1:]}),
                   config=config, out_dir=tmp_path)


def test_trainer_resolves_auto_says_why_and_warns_once(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("formers.training.trainer.probe", lambda device: AVX2)
    monkeypatch.setattr(P, "_WARNED", set())
    result = tiny_trainer(tmp_path / "auto", "auto").fit()
    assert result["precision"] == "fp32"
    assert "precision: auto -> fp32 (bf16 would be emulated here; cpu 'EPYC 7003'" in capsys.readouterr().out
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = tiny_trainer(tmp_path / "a", "bf16", progress=False)
        tiny_trainer(tmp_path / "b", "bf16", progress=False)  # a study builds many Trainers: one warning
    assert first.precision == "bf16"
    assert [str(w.message).split(" (")[0] for w in caught] == ["precision bf16 on a device without native bf16"]
