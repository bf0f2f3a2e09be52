"""LoRA: exact merge/unmerge, fused-qkv slices, only adapters train, adapters saved and loaded alone."""

import pytest
import torch
from safetensors.torch import load_file

import formers
from formers.adapt import (
    LoRALinear,
    apply_lora,
    count_parameters,
    load_lora,
    lora_layers,
    merge_lora,
    save_lora,
    strip_lora,
    unmerge_lora,
)
from formers.errors import CheckpointError, ConfigError
from formers.objectives import SequenceClassification
from formers.training import Trainer
from tests.adapt.helpers import Batches, quiet, tiny_classifier

X = torch.randint(4, 40, (3, 9), generator=torch.Generator().manual_seed(1))


def adapted(targets=("qkv:q,v", "out", "up"), seed=0):
    model = tiny_classifier(seed)
    apply_lora(model.trunk, targets=targets, rank=4, alpha=8)
    torch.manual_seed(1)
    for layer in lora_layers(model).values():  # B starts at 0; move it so the update is not trivially zero
        torch.nn.init.normal_(layer.lora_B, std=0.1)
    return model.eval()


def test_new_adapters_leave_the_output_unchanged():
    model = tiny_classifier().eval()
    before = model(X).logits
    apply_lora(model.trunk, targets=("qkv", "out"), rank=4, alpha=8)
    assert torch.equal(model(X).logits, before)  # B = 0


def test_merged_and_unmerged_outputs_are_equal_and_unmerge_is_exact():
    model = adapted()
    weights = {n: p.detach().clone() for n, p in model.named_parameters()}
    unmerged = model(X).logits
    assert not torch.allclose(unmerged, tiny_classifier().eval()(X).logits, atol=1e-3)  # the adapters do something
    merge_lora(model)
    assert all(layer.merged for layer in lora_layers(model).values())
    torch.testing.assert_close(model(X).logits, unmerged, atol=1e-5, rtol=1e-5)
    unmerge_lora(model)
    assert all(torch.equal(p, weights[n]) for n, p in model.named_parameters())  # bit for bit
    assert torch.equal(model(X).logits, unmerged)


def test_fused_qkv_parts_are_separate_adapters_on_the_q_and_v_slices():
    torch.manual_seed(0)
    base = torch.nn.Linear(8, 3 * 6)
    layer = LoRALinear(base, rank=2, alpha=4, n_slices=3, slices=(0, 2))
    torch.nn.init.normal_(layer.lora_B)
    x = torch.randn(5, 8)
    delta = layer(x) - base(x)  # (5, 18) = [q | k | v]
    a, b = layer.lora_A, layer.lora_B  # (2, r, 8), (2, 6, r)
    torch.testing.assert_close(delta[:, :6], 2.0 * x @ (b[0] @ a[0]).T)
    assert torch.equal(delta[:, 6:12], torch.zeros(5, 6))  # k untouched
    torch.testing.assert_close(delta[:, 12:], 2.0 * x @ (b[1] @ a[1]).T)
    torch.testing.assert_close(layer.delta_weight()[12:], 2.0 * b[1] @ a[1])


def test_a_whole_fused_layer_shares_one_input_subspace():
    model = tiny_classifier()
    apply_lora(model.trunk, targets=("qkv",), rank=4, alpha=8)
    layer = next(iter(lora_layers(model).values()))
    assert layer.lora_A.shape == (1, 4, 32) and layer.lora_B.shape == (1, 96, 4)  # r (D + 3 H Dh) parameters
    assert torch.linalg.matrix_rank(adapted(("qkv",)).trunk.stack.blocks[0].attention.sublayer.qkv
                                    .delta_weight()) == 4


def test_only_adapters_and_the_head_train(tmp_path):
    model = tiny_classifier()
    names = apply_lora(model.trunk, targets=("qkv:q,v", "out"), rank=2, alpha=4)
    assert len(names) == 6 and all(n.endswith(("qkv", "out")) for n in names)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {n for n in trainable if "lora_" in n or n.startswith("head.")}
    assert count_parameters(model) == 3 * (2 * 2 * 32 + 2 * 32 * 2 + 2 * 32 + 32 * 2) + 32 * 3 + 3
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    Trainer(model, SequenceClassification(), Batches(), config=quiet(max_steps=3), out_dir=tmp_path).fit()
    params = dict(model.named_parameters())
    assert all(torch.equal(params[n], p) for n, p in frozen.items())
    assert any(not torch.equal(p, torch.zeros_like(p)) for n, p in params.items() if n.endswith("lora_B"))


def test_adapters_save_and_load_alone(tmp_path):
    model = adapted()
    expected = model(X).logits
    save_lora(model, tmp_path / "adapters.safetensors")
    saved = load_file(tmp_path / "adapters.safetensors")
    assert sorted(saved) == sorted(n for n, _ in model.named_parameters() if "lora_" in n)
    assert sum(t.numel() for t in saved.values()) < count_parameters(model, trainable_only=False) / 8
    fresh = tiny_classifier().eval()  # the same base weights, no adapters yet
    loaded = load_lora(fresh, tmp_path / "adapters.safetensors")
    assert loaded == sorted(lora_layers(model))
    assert torch.equal(fresh(X).logits, expected)


def test_strip_lora_leaves_a_normal_checkpoint(tmp_path):
    model = adapted()
    expected = model(X).logits
    strip_lora(model)
    assert not lora_layers(model)
    formers.save_model(model, tmp_path / "merged")
    torch.testing.assert_close(formers.load(tmp_path / "merged")(X).logits, expected, atol=1e-5, rtol=1e-5)


def test_bad_targets_and_files_raise_typed_errors(tmp_path):
    with pytest.raises(ConfigError, match="'query' matches no nn.Linear.*qkv"):
        apply_lora(tiny_classifier().trunk, targets=("query",))
    with pytest.raises(ConfigError, match="only fused layers"):
        apply_lora(tiny_classifier().trunk, targets=("out:q",))
    with pytest.raises(ConfigError, match="parts \\['x'\\]"):
        apply_lora(tiny_classifier().trunk, targets=("qkv:q,x",))
    with pytest.raises(ConfigError, match="no LoRA layers"):
        save_lora(tiny_classifier(), tmp_path / "a.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="not a LoRA adapter file"):
        load_lora(tiny_classifier(), tmp_path / "junk.safetensors")
