"""The chunked cross-entropy equals F.cross_entropy on fp32 logits: loss, gradient, ignore, smoothing."""

import pytest
import torch
from torch.nn import functional as F

from formers.objectives import IGNORE_INDEX, token_cross_entropy
from formers.objectives.causal_lm import _BLOCK


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_loss_and_gradient_match_cross_entropy_on_fp32_logits(dtype, smoothing):
    g = torch.Generator().manual_seed(0)
    v = _BLOCK // 3 + 5  # several blocks of 3 rows, the last one short
    logits = (torch.randn(2, 7, v, generator=g) * 4).to(dtype).requires_grad_()
    labels = torch.randint(0, v, (2, 7), generator=g)
    labels[0, :3] = IGNORE_INDEX
    ours = token_cross_entropy(logits, labels, smoothing)
    (grad,) = torch.autograd.grad(ours["loss"] * 3.0, logits)
    flat = logits.float().reshape(-1, v)
    ref = F.cross_entropy(flat, labels.reshape(-1), ignore_index=IGNORE_INDEX, label_smoothing=smoothing)
    (ref_grad,) = torch.autograd.grad(ref * 3.0, logits)
    assert ours["loss"].dtype == torch.float32
    # Both are fp32 sums over the same terms in another order (blocks of rows, then the mean): ~1e-6 relative
    # (AVX2 measured 9e-7 on a loss of 19), so 1e-5 relative keeps a 10x margin on every CPU.
    assert ours["loss"].item() == pytest.approx(ref.item(), rel=1e-5, abs=0)
    # Gradients are (softmax - target) / n. A tiny probability exp(x - lse) inherits the log-sum-exp's absolute
    # error (~2e-5 on a loss of 19) as relative error, and smoothing subtracts a constant from it: measured up to
    # 8e-5 relative in fp32, hence 1e-3. In bf16 both gradients are rounded to 8 significant bits on their own,
    # so neighbours one unit in the last place apart (2^-7 = 7.8e-3 relative, measured) both count as right:
    # 2e-2. The floor, 1e-6 of the largest entry, covers entries that underflow in one order and not the other.
    rtol = 1e-3 if dtype == torch.float32 else 2e-2
    scale = ref_grad.float().abs().max().item()
    assert grad.dtype == dtype and torch.allclose(grad.float(), ref_grad.float(), atol=1e-6 * scale, rtol=rtol)
    assert grad[0, :3].abs().max() == 0  # ignored positions get no gradient
    valid = labels.reshape(-1) != IGNORE_INDEX
    hits = (flat.argmax(-1) == labels.reshape(-1))[valid].float().mean()
    assert ours["accuracy"].item() == pytest.approx(hits.item())


def test_no_gradient_work_without_grad_and_one_backward_only():
    logits = torch.randn(4, 11, requires_grad=True)
    labels = torch.randint(0, 11, (4,))
    with torch.no_grad():
        assert token_cross_entropy(logits, labels)["loss"].requires_grad is False
    loss = token_cross_entropy(logits, labels)["loss"]
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="one backward pass"):
        loss.backward()
