import random
import stat

import numpy as np
import pytest
import torch

from formers import storage
from formers.errors import CheckpointError, ShapeMismatchError
from formers.optim import OptimizerConfig, ScheduleConfig, build_optimizer, build_scheduler
from formers.training import checkpoint as ckpt

# ---- atomic folders and listing ---------------------------------------------------------------


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    with pytest.raises(RuntimeError, match="killed"), storage.atomic_write_dir(tmp_path / "step-00000001") as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".tmp-")
        (tmp / "a.txt").write_text("half")
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []
    with storage.atomic_write_dir(tmp_path / "step-00000002") as tmp:
        (tmp / "sub").mkdir()
        (tmp / "sub" / "a.txt").write_text("whole")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-00000002"]
    assert (tmp_path / "step-00000002" / "sub" / "a.txt").read_text() == "whole"
    assert (tmp_path / "step-00000002" / storage.COMPLETE).is_file()
    assert storage.latest_checkpoint(tmp_path) == tmp_path / "step-00000002"


def test_failed_rewrite_keeps_the_old_folder_and_a_clean_one_replaces_it(tmp_path):
    final = tmp_path / storage.checkpoint_name(3)
    with storage.atomic_write_dir(final) as tmp:
        (tmp / "old.txt").write_text("old")
    with pytest.raises(KeyboardInterrupt), storage.atomic_write_dir(final) as tmp:
        (tmp / "new.txt").write_text("new")
        raise KeyboardInterrupt
    assert sorted(p.name for p in final.iterdir()) == [storage.COMPLETE, "old.txt"]
    with storage.atomic_write_dir(final) as tmp:
        (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in final.iterdir()) == [storage.COMPLETE, "new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [final.name]  # the old folder moved aside is gone


def test_checkpoint_folders_follow_the_umask(tmp_path):
    with storage.atomic_write_dir(tmp_path / "step-00000001"):
        pass
    assert stat.S_IMODE((tmp_path / "step-00000001").stat().st_mode) != 0o700  # mkdtemp's mode would be


def test_incomplete_folders_are_not_checkpoints(tmp_path):
    (tmp_path / "step-00000005").mkdir()  # no COMPLETE: a crash mid-write by other means
    (tmp_path / ".tmp-step-00000006-x").mkdir()
    (tmp_path / ".tmp-step-00000006-x" / storage.COMPLETE).write_text("ok")
    (tmp_path / "step-00000007").write_text("a file, not a folder")
    (tmp_path / "notes").mkdir()
    assert storage.list_checkpoints(tmp_path) == [] and storage.latest_checkpoint(tmp_path) is None
    for step in (10, 2, 100_000_000):
        with storage.atomic_write_dir(tmp_path / storage.checkpoint_name(step)):
            pass
    assert [p.name for p in storage.list_checkpoints(tmp_path)] == ["step-00000002", "step-00000010", "step-100000000"]
    assert storage.list_checkpoints(tmp_path / "absent") == []


def test_remove_checkpoint(tmp_path):
    for step in (1, 2):
        with storage.atomic_write_dir(tmp_path / storage.checkpoint_name(step)) as tmp:
            (tmp / "w.txt").write_text("w")
    storage.remove_checkpoint(tmp_path / "step-00000001")
    assert [p.name for p in tmp_path.iterdir()] == ["step-00000002"]


def test_checkpoint_name_is_zero_padded():
    assert storage.checkpoint_name(42) == "step-00000042"


# ---- files ------------------------------------------------------------------------------------


def test_tensors_round_trip_with_shared_storage_and_views(tmp_path):
    w = torch.randn(4, 3, requires_grad=True)
    tensors = {"w": w, "tied": w, "rows": w[1:], "t": w.t(), "step": torch.tensor(3.0), "b": torch.ones(2).bfloat16()}
    storage.save_tensors(tmp_path / "t.safetensors", tensors, metadata={"format": "pt"})
    back = storage.read_tensors(tmp_path / "t.safetensors")
    assert back.keys() == tensors.keys()
    for k, v in tensors.items():
        assert torch.equal(back[k], v.detach()) and back[k].dtype == v.dtype and back[k].shape == v.shape
    assert [p.name for p in tmp_path.iterdir()] == ["t.safetensors"]  # no temp file left behind


def test_json_is_sorted_and_round_trips(tmp_path):
    storage.write_json(tmp_path / "a.json", {"b": [1, 2.5], "a": None})
    assert (tmp_path / "a.json").read_text() == '{\n  "a": null,\n  "b": [\n    1,\n    2.5\n  ]\n}\n'
    assert storage.read_json(tmp_path / "a.json") == {"a": None, "b": [1, 2.5]}
    with pytest.raises(TypeError):
        storage.write_json(tmp_path / "a.json", {"x": object()})
    assert storage.read_json(tmp_path / "a.json") == {"a": None, "b": [1, 2.5]}  # a failed write keeps the old file


def test_corrupt_files_raise_checkpoint_error(tmp_path):
    path = tmp_path / "t.safetensors"
    storage.save_tensors(path, {"x": torch.ones(100)})
    data = path.read_bytes()
    for bad in (data[:50], data[:-4], b"", b"\xff" * 64, data[:8] + b"{" * (len(data) - 8)):
        path.write_bytes(bad)
        with pytest.raises(CheckpointError, match="truncated or corrupt.*re-save it or pick another checkpoint"):
            storage.read_tensors(path)
    with pytest.raises(CheckpointError, match="none.safetensors is missing"):
        storage.read_tensors(tmp_path / "none.safetensors")


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.int64])
def test_a_flipped_byte_in_tensor_data_is_caught(tmp_path, dtype):
    path = tmp_path / "t.safetensors"
    tensors = {"a": torch.arange(300).to(dtype), "b": torch.zeros(0), "c": torch.ones(2, 3, dtype=dtype)}
    storage.save_tensors(path, tensors)
    assert all(torch.equal(v, tensors[k]) for k, v in storage.read_tensors(path).items())
    data = bytearray(path.read_bytes())
    data[-7] ^= 0x10  # one bit of the last tensor's data: header and size still agree
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="t.safetensors is corrupt: its tensor data does not match the checksum"):
        storage.read_tensors(path)


def test_safetensors_files_from_other_tools_load_without_a_checksum(tmp_path):
    from safetensors.torch import save_file

    save_file({"x": torch.ones(3)}, str(tmp_path / "hf.safetensors"))
    assert torch.equal(storage.read_tensors(tmp_path / "hf.safetensors")["x"], torch.ones(3))


def test_corrupt_json_raises_checkpoint_error(tmp_path):
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(CheckpointError, match="bad.json is not valid JSON"):
        storage.read_json(tmp_path / "bad.json")
    (tmp_path / "bin.json").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        storage.read_json(tmp_path / "bin.json")
    with pytest.raises(CheckpointError, match="missing"):
        storage.read_json(tmp_path / "none.json")


# ---- optimizer state --------------------------------------------------------------------------


def make_run(seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4), torch.nn.Linear(4, 1))
    opt = build_optimizer(model, OptimizerConfig(lr=0.05))
    sched = build_scheduler(opt, ScheduleConfig(kind="cosine", warmup_steps=2), 10)
    return model, opt, sched


def train(model, opt, sched, batches):
    for x in batches:
        opt.zero_grad()
        model(x).square().mean().backward()
        opt.step()
        sched.step()


def save_and_reload(opt, tmp_path):
    tensors, meta = ckpt.optimizer_state_to_tensors(opt)
    storage.save_tensors(tmp_path / "optimizer.safetensors", tensors)
    storage.write_json(tmp_path / "optimizer.json", meta)
    return storage.read_tensors(tmp_path / "optimizer.safetensors"), storage.read_json(tmp_path / "optimizer.json")


def assert_same_state(a: dict, b: dict):
    assert a["param_groups"] == b["param_groups"]  # lr, betas (a tuple again), eps, params...
    assert a["state"].keys() == b["state"].keys()
    for i, values in a["state"].items():
        assert values.keys() == b["state"][i].keys()
        for k, v in values.items():
            w = b["state"][i][k]
            assert torch.equal(v, w) and v.dtype == w.dtype and v.device == w.device and v.shape == w.shape


def test_optimizer_resume_is_bit_identical_to_the_uninterrupted_run(tmp_path):
    g = torch.Generator().manual_seed(1)
    batches = [torch.randn(5, 3, generator=g) for _ in range(8)]
    full = make_run()
    train(*full, batches)  # the uninterrupted run: 8 steps

    model, opt, sched = make_run()
    train(model, opt, sched, batches[:3])
    assert "state.0.step" in ckpt.optimizer_state_to_tensors(opt)[0]  # Adam's step counter is a tensor
    tensors, meta = save_and_reload(opt, tmp_path)
    weights, sched_state = {k: v.clone() for k, v in model.state_dict().items()}, sched.state_dict()

    resumed, opt2, sched2 = make_run(seed=123)  # a fresh process: other initial weights
    resumed.load_state_dict(weights)
    ckpt.load_optimizer_state(opt2, tensors, meta)
    sched2.load_state_dict(sched_state)
    assert_same_state(opt.state_dict(), opt2.state_dict())
    train(resumed, opt2, sched2, batches[3:])
    for p, q in zip(full[0].parameters(), resumed.parameters(), strict=True):
        assert torch.equal(p, q)
    assert sched2.get_last_lr() == full[2].get_last_lr()


def test_sgd_momentum_and_per_group_lr_round_trip(tmp_path):
    model, _, _ = make_run()
    groups = [{"params": list(model[0].parameters()), "lr": 0.5, "name": "first"},
              {"params": list(model[2].parameters())}]
    opt = build_optimizer(groups, OptimizerConfig(name="sgd", lr=0.01))
    train(model, opt, build_scheduler(opt, ScheduleConfig(kind="constant"), 5), [torch.randn(2, 3)] * 2)
    opt2 = build_optimizer(groups, OptimizerConfig(name="sgd", lr=0.01))
    ckpt.load_optimizer_state(opt2, *save_and_reload(opt, tmp_path))
    assert_same_state(opt.state_dict(), opt2.state_dict())
    assert [g["lr"] for g in opt2.param_groups] == [0.5, 0.01] and opt2.param_groups[0]["name"] == "first"


def test_optimizer_state_for_other_parameters_is_refused(tmp_path):
    model, opt, sched = make_run()
    train(model, opt, sched, [torch.randn(2, 3)])
    tensors, meta = save_and_reload(opt, tmp_path)
    other = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.LayerNorm(5), torch.nn.Linear(5, 1))
    with pytest.raises(ShapeMismatchError, match="has shape"):
        ckpt.load_optimizer_state(build_optimizer(other, OptimizerConfig()), tensors, meta)
    fewer = torch.nn.Linear(3, 4)
    with pytest.raises(CheckpointError, match="does not fit this optimizer"):
        ckpt.load_optimizer_state(build_optimizer(fewer, OptimizerConfig()), tensors, meta)


# ---- random number generators -----------------------------------------------------------------


def test_rng_round_trip_through_files(tmp_path):
    torch.rand(1), random.random(), np.random.rand()  # move every stream away from its seed
    tensors, meta = ckpt.rng_state()
    assert tensors["torch_cpu"].dtype == torch.uint8
    storage.save_tensors(tmp_path / "rng.safetensors", tensors)
    storage.write_json(tmp_path / "rng.json", meta)
    expected = (torch.rand(3), random.random(), random.gauss(0, 1), np.random.rand(2))
    torch.manual_seed(999), random.seed(999), np.random.seed(999)
    ckpt.set_rng_state(storage.read_tensors(tmp_path / "rng.safetensors"), storage.read_json(tmp_path / "rng.json"))
    assert torch.equal(torch.rand(3), expected[0])
    assert random.random() == expected[1] and random.gauss(0, 1) == expected[2]
    assert np.array_equal(np.random.rand(2), expected[3])


def test_missing_rng_state_is_a_checkpoint_error():
    with pytest.raises(CheckpointError, match="RNG state"):
        ckpt.set_rng_state({}, {})
