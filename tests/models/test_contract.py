"""Shapes, causal leakage, padding, save/load round trip and bf16 forward for every preset."""

import pytest
import torch

import formers
from formers.errors import TokenOutOfVocabError
from formers.registry import build_model
from tests.models.contract import CASES


def make(case):
    torch.manual_seed(0)
    return build_model(case.config).eval()


def ids(case, b=2, t=10):
    return torch.randint(1, case.config.vocab_size, (b, t))


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_shapes(case):
    out = make(case)(**case.inputs(ids(case)))
    assert out.logits.shape == (2, 10, case.config.vocab_size)
    assert out.last_hidden_state.shape == (2, 10, case.config.d_model)


@pytest.mark.parametrize("case", [c for c in CASES if c.causal], ids=lambda c: c.name)
def test_no_causal_leakage(case):
    model, x = make(case), ids(case)
    y = x.clone()
    y[:, 6] = (y[:, 6] + 1) % case.config.vocab_size
    a, b = model(**case.inputs(x)).logits, model(**case.inputs(y)).logits
    torch.testing.assert_close(a[:, :6], b[:, :6])
    assert not torch.allclose(a[:, 6:], b[:, 6:])


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_right_padding_is_ignored(case):
    model, x = make(case), ids(case, b=1, t=6)
    padded = torch.cat([x, torch.zeros(1, 3, dtype=torch.long)], dim=1)
    mask = torch.tensor([[1] * 6 + [0] * 3])
    padded_logits = model(**case.inputs(padded, mask)).logits[:, :6]
    torch.testing.assert_close(padded_logits, model(**case.inputs(x)).logits, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_save_load_round_trip(case, tmp_path):
    model = make(case)
    formers.save_model(model, tmp_path)
    again = formers.load(tmp_path)
    x = ids(case)
    assert type(again) is type(model) and again.config == model.config
    assert torch.equal(model(**case.inputs(x)).logits, again(**case.inputs(x)).logits)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_bf16_autocast_forward_is_close(case):
    model, x = make(case), ids(case)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = model(**case.inputs(x)).logits
    assert low.dtype == torch.bfloat16 and torch.isfinite(low).all()
    ref = model(**case.inputs(x)).logits
    # bf16 keeps 8 significant bits (~4e-3 relative per rounding), compounded over a few layers: a few 1e-2 of
    # the logits' scale; 0.1 of it still catches a wrong cast (which is off by the whole scale)
    assert (low.float() - ref).abs().max() < 0.1 * ref.abs().max()


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_out_of_vocab_ids_are_refused(case):
    bad = ids(case)
    bad[0, 3] = case.config.vocab_size
    with pytest.raises(TokenOutOfVocabError, match=f"token id {case.config.vocab_size}"):
        make(case)(**case.inputs(bad))
