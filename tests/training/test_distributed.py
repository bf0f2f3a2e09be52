"""Multi-process training on CPU (gloo): DDP equals one process, FSDP trains and resumes, resumes are exact.

Two processes are started the way torchrun starts them (RANK, WORLD_SIZE, MASTER_ADDR/PORT in the
environment) and run `formers train` jobs; one process with the same global batch is the reference.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import formers
from formers.cli import main
from formers.training import distributed

ROOT = Path(__file__).resolve().parents[2]
RECIPE = str(ROOT / "recipes" / "gpt-pydocs-char.yaml")
TINY = [
    "--model.n_layers=2", "--model.d_model=32", "--model.n_heads=4", "--model.dropout=0.0", "--data.seq_len=32",
    "--data.max_chars=20000", "--trainer.eval_every=0", "--trainer.eval_batches=3", "--trainer.progress=false",
    "--trainer.tensorboard=false", "--trainer.log_every=1", "--trainer.save_every=3", "--trainer.max_steps=6",
    "--sample.max_new_tokens=5", "--trainer.precision=fp32",
]
PER_RANK_BATCH = 2


def launch(jobs: list[list[str]], logs: Path, world: int = 2) -> None:
    """Start `world` ranks of tests/training/distributed_worker.py, as torchrun would."""
    procs = []
    for rank in range(world):
        env = {**os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world),
               "MASTER_ADDR": "127.0.0.1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
        with open(logs / f"rank{rank}.log", "w") as log:
            procs.append(subprocess.Popen(
                [sys.executable, str(Path(__file__).with_name("distributed_worker.py")), str(logs), json.dumps(jobs)],
                env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
            ))
    try:
        for rank, p in enumerate(procs):
            assert p.wait(timeout=240) == 0, (logs / f"rank{rank}.log").read_text()[-3000:]
    finally:
        for p in procs:
            p.kill()


def train_args(out: Path, *extra: str) -> list[str]:
    return ["train", RECIPE, "--out", str(out), *TINY, *extra]


def losses(run: Path) -> list[float]:
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [r["train/loss"] for r in lines if "train/loss" in r]


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return formers.load(folder).state_dict()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two-process DDP and FSDP runs, each also killed after step 3 and resumed; one one-process reference."""
    tmp = tmp_path_factory.mktemp("dist")
    per_rank = f"--trainer.batch_size={PER_RANK_BATCH}"
    jobs = []
    for mode in ("ddp", "fsdp"):
        full, split = tmp / mode, tmp / f"{mode}-resumed"
        mode_arg = f"--trainer.distributed={mode}"
        jobs += [
            train_args(full, per_rank, mode_arg),
            train_args(split, per_rank, mode_arg, "--trainer.max_steps=3"),  # as if killed after step 3
            train_args(split, per_rank, mode_arg, "--resume=true"),
        ]
    launch(jobs, tmp)
    one = tmp / "one"
    assert main(train_args(one, f"--trainer.batch_size={2 * PER_RANK_BATCH}")) == 0
    # the FSDP checkpoint of step 3 resumed by one process: checkpoints are the same files in every mode
    cross = tmp / "fsdp-then-one"
    cross.mkdir()
    os.symlink(tmp / "fsdp-resumed" / "step-00000003", cross / "step-00000003")
    assert main(train_args(cross, f"--trainer.batch_size={2 * PER_RANK_BATCH}", "--resume=true")) == 0
    return tmp


def same_losses(a: list[float], b: list[float]) -> bool:
    """Ranks reduce gradients in another order than one process (~1e-7 relative), and six Adam steps carry
    it into the losses: ~1e-6 relative; 1e-5 relative keeps a 10x margin."""
    return all(x == pytest.approx(y, rel=1e-5) for x, y in zip(a, b, strict=True))


def test_ddp_gives_the_losses_of_one_process_with_the_same_global_batch(runs):
    one, ddp = losses(runs / "one"), losses(runs / "ddp")
    assert len(one) == len(ddp) == 6
    assert same_losses(one, ddp), (one, ddp)
    assert one[-1] < one[0]


def test_a_run_resumed_under_ddp_continues_exactly(runs):
    assert losses(runs / "ddp-resumed") == losses(runs / "ddp")  # steps 1-3 from the checkpoint, 4-6 recomputed
    full, resumed = weights(runs / "ddp" / "step-00000006"), weights(runs / "ddp-resumed" / "step-00000006")
    for name, value in full.items():
        assert torch.equal(value, resumed[name]), name


def test_fsdp_trains_like_one_process_and_its_checkpoint_resumes(runs):
    one, fsdp = losses(runs / "one"), losses(runs / "fsdp")
    assert same_losses(one, fsdp), (one, fsdp)
    assert losses(runs / "fsdp-resumed") == fsdp  # exact under FSDP too
    full, resumed = weights(runs / "fsdp" / "step-00000006"), weights(runs / "fsdp-resumed" / "step-00000006")
    for name, value in full.items():
        assert torch.equal(value, resumed[name]), name
    # the gathered FSDP checkpoint (optimizer state included) resumes in one process
    cross = losses(runs / "fsdp-then-one")  # its own log holds steps 4-6
    assert same_losses(one[3:], cross), (one, cross)


def test_only_rank_zero_writes(runs):
    files = {p.name for p in (runs / "ddp" / "step-00000006").iterdir()}
    assert {"model.safetensors", "optimizer.safetensors", "rng.safetensors", "rng-rank1.safetensors"} <= files
    assert len((runs / "ddp" / "metrics.jsonl").read_text().splitlines()) == len(
        (runs / "one" / "metrics.jsonl").read_text().splitlines())  # one writer: no line twice


def test_one_process_ignores_the_mode_and_many_need_one(monkeypatch):
    assert distributed.make_strategy("fsdp", torch.device("cpu")).name == "none"  # no torchrun: plain training
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(formers.errors.ConfigError, match="trainer.distributed=ddp"):
        distributed.setup("none", torch.device("cpu"))
