"""Head importance: masking head h equals zeroing its slice of the output projection; kernels come back."""

import pytest
import torch
import torch.nn.functional as F

from formers.errors import ConfigError
from formers.interpret.heads import head_importance, mask_heads
from formers.models import GPT, GPTConfig
from formers.nn.kernels import SDPAKernel

CONFIG = GPTConfig(vocab_size=31, d_model=32, n_heads=4, n_layers=2, max_seq_len=16, dropout=0.0)
NAME = "stack.blocks.1.attention.sublayer"


def lm_loss(x: torch.Tensor):
    def loss(model):
        logits = model(x[:, :-1]).logits
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1))
    return loss


def test_importance_is_the_loss_rise_when_a_heads_output_is_zeroed():
    torch.manual_seed(0)
    model = GPT(CONFIG).eval()
    loss = lm_loss(torch.randint(0, 31, (2, 9)))
    scores = head_importance(model, loss)
    assert list(scores) == ["stack.blocks.0.attention.sublayer", NAME]
    assert all(s.shape == (4,) for s in scores.values())
    with torch.no_grad():
        base = float(loss(model))
    d_h = 8
    for h in (0, 3):  # the same ablation by hand: zero head h's columns of W_O in a copy of the weights
        with torch.no_grad():
            out = model.get_submodule(NAME).out.weight
            saved = out[:, h * d_h:(h + 1) * d_h].clone()
            out[:, h * d_h:(h + 1) * d_h] = 0
            by_hand = float(loss(model)) - base
            out[:, h * d_h:(h + 1) * d_h] = saved
        assert scores[NAME][h].item() == pytest.approx(by_hand, abs=1e-5)
    assert scores[NAME].abs().sum() > 0
    assert all(isinstance(m.kernel, SDPAKernel) for m in model.modules() if hasattr(m, "kernel"))


def test_a_head_whose_values_are_zero_has_no_importance():
    torch.manual_seed(0)
    model = GPT(CONFIG).eval()
    with torch.no_grad():  # head 2's value rows of the fused qkv: [q | k | v], each 4 heads x 8
        model.get_submodule(NAME).qkv.weight[64 + 16:64 + 24] = 0
        model.get_submodule(NAME).qkv.bias[64 + 16:64 + 24] = 0
    scores = head_importance(model, lm_loss(torch.randint(0, 31, (2, 9))))
    assert scores[NAME][2].item() == pytest.approx(0.0, abs=1e-6)
    assert scores[NAME][[0, 1, 3]].abs().min() > 0


def test_bad_heads_are_refused_and_kernels_restored_on_error():
    model = GPT(CONFIG)
    with pytest.raises(ConfigError, match="heads \\[4\\]"), mask_heads(model, {NAME: [4]}):
        pass
    with pytest.raises(ConfigError, match="not an attention module"), mask_heads(model, {"stack": [0]}):
        pass
    with pytest.raises(RuntimeError, match="boom"), mask_heads(model, {NAME: [0]}):
        raise RuntimeError("boom")
    assert isinstance(model.get_submodule(NAME).kernel, SDPAKernel)
