import random

import pytest
import torch

from formers.errors import CheckpointError
from formers.optim import OptimizerConfig, build_optimizer
from formers.training import checkpoint as ckpt


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    with pytest.raises(RuntimeError), ckpt.atomic_write_dir(tmp_path / "step-00000001") as tmp:
        (tmp / "a.txt").write_text("half")
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []
    with ckpt.atomic_write_dir(tmp_path / "step-00000002") as tmp:
        (tmp / "a.txt").write_text("whole")
    assert ckpt.latest_checkpoint(tmp_path) == tmp_path / "step-00000002"
    assert (tmp_path / "step-00000002" / ckpt.COMPLETE).is_file()


def test_incomplete_folders_are_not_checkpoints(tmp_path):
    (tmp_path / "step-00000005").mkdir()
    (tmp_path / ".tmp-step-00000006-x").mkdir()
    (tmp_path / ".tmp-step-00000006-x" / ckpt.COMPLETE).write_text("ok")
    assert ckpt.list_checkpoints(tmp_path) == []
    for step in (10, 2):
        with ckpt.atomic_write_dir(tmp_path / ckpt.checkpoint_name(step)):
            pass
    assert [p.name for p in ckpt.list_checkpoints(tmp_path)] == ["step-00000002", "step-00000010"]


def test_optimizer_state_round_trip_is_bit_identical(tmp_path):
    torch.manual_seed(0)
    m = torch.nn.Linear(3, 3)
    opt = build_optimizer(m, OptimizerConfig(lr=0.1))
    for _ in range(3):
        opt.zero_grad()
        m(torch.randn(2, 3)).sum().backward()
        opt.step()
    tensors, meta = ckpt.optimizer_state_to_tensors(opt)
    ckpt.save_tensors(tmp_path / "o.safetensors", tensors)
    ckpt.write_json(tmp_path / "o.json", meta)
    m2 = torch.nn.Linear(3, 3)
    m2.load_state_dict(m.state_dict())
    opt2 = build_optimizer(m2, OptimizerConfig(lr=0.1))
    ckpt.load_optimizer_state(opt2, ckpt.load_tensors(tmp_path / "o.safetensors"), ckpt.read_json(tmp_path / "o.json"))
    a, b = opt.state_dict(), opt2.state_dict()
    for i in a["state"]:
        for k, v in a["state"][i].items():
            assert torch.equal(v, b["state"][i][k]) and v.dtype == b["state"][i][k].dtype
    x = torch.randn(2, 3)
    for model, o in ((m, opt), (m2, opt2)):
        o.zero_grad()
        model(x).sum().backward()
        o.step()
    assert torch.equal(m.weight, m2.weight)


def test_rng_round_trip(tmp_path):
    tensors, meta = ckpt.rng_state()
    expected = (torch.rand(3), random.random())
    ckpt.set_rng_state(tensors, meta)
    assert torch.equal(torch.rand(3), expected[0]) and random.random() == expected[1]


def test_corrupt_files_raise_checkpoint_error(tmp_path):
    ckpt.save_tensors(tmp_path / "t.safetensors", {"x": torch.ones(100)})
    data = (tmp_path / "t.safetensors").read_bytes()
    (tmp_path / "t.safetensors").write_bytes(data[:50])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        ckpt.load_tensors(tmp_path / "t.safetensors")
    with pytest.raises(CheckpointError, match="missing"):
        ckpt.load_tensors(tmp_path / "none.safetensors")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        ckpt.read_json(tmp_path / "bad.json")
