"""The Trainer: learning, exact resume, non-finite losses, checkpoints that survive a crash."""

import pytest
import torch

import formers
from formers.data import TokenWindows
from formers.errors import NonFiniteLossError
from formers.models import GPT, GPTConfig
from formers.objectives import CausalLM
from formers.training import Trainer, TrainerConfig
from formers.training.checkpoint import latest_checkpoint, list_checkpoints

TINY = dict(vocab_size=30, d_model=32, n_heads=4, n_layers=2, max_seq_len=32)


class FixedBatch:
    """The same batch every step: for overfitting."""

    def __init__(self, batch):
        self.batch = batch

    def next_batch(self):
        return self.batch

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass


def quiet(**kw):
    base = dict(progress=False, tensorboard=False, eval_every=0, log_every=1, precision="fp32")  # the same on every CPU
    return TrainerConfig(**{**base, **kw})


def tokens(n=4000):
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 30, (n,), generator=g)


def test_tiny_gpt_overfits_one_batch(tmp_path):
    torch.manual_seed(0)
    model = GPT(GPTConfig(**TINY, dropout=0.0))
    w = tokens(4 * 17).view(4, 17)
    source = FixedBatch({"input_ids": w[:, :-1], "labels": w[:, 1:]})
    cfg = quiet(max_steps=150, optimizer={"lr": 3e-3, "weight_decay": 0.0}, schedule={"kind": "constant"})
    result = Trainer(model, CausalLM(), source, config=cfg, out_dir=tmp_path, val_batches=[source.batch]).fit()
    assert result["last_eval"]["val/loss"] < 0.05
    assert result["first_eval"]["val/loss"] > 3.0


def run(tmp_path, max_steps, *, resume=False, precision="fp32", save_every=3):
    torch.manual_seed(0)
    model = GPT(GPTConfig(**TINY, dropout=0.1))  # dropout: resume must restore the RNG too
    source = TokenWindows(tokens(), seq_len=16, batch_size=4, seed=1)
    cfg = quiet(max_steps=max_steps, save_every=save_every, precision=precision,
                schedule={"kind": "cosine", "warmup_steps": 2})
    trainer = Trainer(model, CausalLM(), source, config=cfg, out_dir=tmp_path)
    result = trainer.fit(resume=resume)
    losses = [r["train/loss"] for r in result["history"] if "train/loss" in r]
    return losses, model


@pytest.mark.parametrize("precision", ["fp32", "bf16", "bf16-pure"])
def test_resume_is_bit_identical(tmp_path, precision):
    full_losses, full_model = run(tmp_path / "full", 8, precision=precision)
    run(tmp_path / "split", 8, precision=precision, save_every=5)
    import shutil

    shutil.rmtree(tmp_path / "split" / "step-00000008")  # as if the run had died after step 5's checkpoint
    resumed_losses, resumed_model = run(tmp_path / "split", 8, resume=True, precision=precision)
    assert resumed_losses == full_losses  # history up to 5 is restored, 6..8 recomputed
    for (name, a), b in zip(full_model.state_dict().items(), resumed_model.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    # bf16-pure hands back an fp32 model holding the fp32 master weights, which the checkpoint stores
    saved = formers.load(tmp_path / "full" / "step-00000008").state_dict()
    for name, value in full_model.state_dict().items():
        assert value.dtype == torch.float32 and torch.equal(value, saved[name]), name


def test_non_finite_loss_stops_before_the_update(tmp_path):
    torch.manual_seed(0)
    model = GPT(GPTConfig(**TINY))
    source = TokenWindows(tokens(), seq_len=16, batch_size=4, seed=1)
    calls = {"n": 0}

    def objective(m, batch):
        calls["n"] += 1
        loss = CausalLM()(m, batch)["loss"]
        return {"loss": loss * float("nan") if calls["n"] == 5 else loss}

    trainer = Trainer(model, objective, source, config=quiet(max_steps=10, save_every=2), out_dir=tmp_path)
    with pytest.raises(NonFiniteLossError, match="step 4"):
        trainer.fit()
    last_good = latest_checkpoint(tmp_path)
    assert last_good.name == "step-00000004"
    # the NaN step applied nothing: the live weights are still those saved after step 4
    saved = formers.load(last_good).state_dict()
    for k, v in trainer.model.state_dict().items():
        assert torch.equal(v, saved[k]), k


def test_checkpoint_left_by_a_killed_writer_is_not_latest(tmp_path):
    run(tmp_path, 3, save_every=3)
    good = latest_checkpoint(tmp_path)
    broken = tmp_path / ".tmp-step-00000009-crash"
    broken.mkdir()
    (broken / "config.json").write_text("{")
    half = tmp_path / "step-00000010"
    half.mkdir()  # no COMPLETE marker: a folder a crashed process could leave
    assert latest_checkpoint(tmp_path) == good


def test_only_the_last_keep_last_checkpoints_stay(tmp_path):
    torch.manual_seed(0)
    source = TokenWindows(tokens(), seq_len=16, batch_size=4, seed=1)
    cfg = quiet(max_steps=5, save_every=1, keep_last=2)
    Trainer(GPT(GPTConfig(**TINY)), CausalLM(), source, config=cfg, out_dir=tmp_path).fit()
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-00000004", "step-00000005"]
    assert sorted(p.name for p in tmp_path.glob("step-*")) == ["step-00000004", "step-00000005"]  # no leftovers


def test_checkpoint_folder_holds_everything(tmp_path):
    run(tmp_path, 3, save_every=3)
    names = {p.name for p in latest_checkpoint(tmp_path).iterdir()}
    assert {"config.json", "model.safetensors", "optimizer.safetensors", "scheduler.json", "rng.safetensors",
            "trainer_state.json"} <= names
    assert (tmp_path / "loss.png").is_file() and (tmp_path / "metrics.jsonl").is_file()


def test_compiled_training_matches_eager_without_graph_breaks(tmp_path):
    import torch._dynamo

    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    losses = {}
    for compile in (False, True):
        torch.manual_seed(0)
        model = GPT(GPTConfig(**TINY, dropout=0.0))
        source = TokenWindows(tokens(), seq_len=16, batch_size=4, seed=1)
        cfg = quiet(max_steps=3, compile=compile)
        fit = Trainer(model, CausalLM(), source, config=cfg, out_dir=tmp_path / str(compile)).fit()
        losses[compile] = [r["train/loss"] for r in fit["history"] if "train/loss" in r]
    # inductor fuses and reorders fp32 arithmetic: ~1e-6 relative per step; 3e-5 relative after 3 steps
    assert losses[True] == pytest.approx(losses[False], rel=3e-5)
    assert not torch._dynamo.utils.counters["graph_break"]  # the token-id and position checks stay out of the graph
