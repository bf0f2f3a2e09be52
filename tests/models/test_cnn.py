"""The CNN encoder: its feature grid as visual tokens, why GroupNorm, config errors."""

import pytest
import torch

from formers.errors import ConfigError
from formers.models import CNN, CNNConfig

TINY = dict(n_channels=1, widths=[8, 16], depths=[1, 2], groups=4)


def cnn(**changes) -> CNN:
    torch.manual_seed(0)
    return CNN(CNNConfig(**{**TINY, **changes})).eval()


def test_tokens_are_the_last_feature_grid_row_major_and_pooled_is_their_mean():
    model, x = cnn(n_classes=3), torch.randn(2, 1, 12, 10)
    out = model(x)
    features = model.stages(model.stem(x))  # (B, 16, 6, 5): one stride-2 stage
    assert features.shape == (2, 16, 6, 5) and out.last_hidden_state.shape == (2, 30, 16)
    assert torch.equal(out.last_hidden_state[:, 5 * 2 + 3], features[:, :, 2, 3])  # row 2, column 3
    torch.testing.assert_close(out.pooled, out.last_hidden_state.mean(1))
    assert out.logits.shape == (2, 3)
    assert cnn()(x).logits is None


def test_odd_sizes_round_up_and_the_stem_stride_shrinks_the_grid():
    assert cnn()(torch.randn(1, 1, 9, 7)).last_hidden_state.shape == (1, 5 * 4, 16)
    assert cnn(stem_stride=2)(torch.randn(1, 1, 16, 16)).last_hidden_state.shape == (1, 4 * 4, 16)


def test_with_groupnorm_an_image_never_depends_on_its_batch_mates_even_in_training():
    x = torch.randn(4, 1, 8, 8)
    for norm, independent in (("groupnorm", True), ("batchnorm", False)):
        model = cnn(norm=norm).train()
        with torch.no_grad():
            for m in model.modules():  # the zero-initialised norms would hide the second conv of each block
                if isinstance(m, torch.nn.GroupNorm | torch.nn.BatchNorm2d):
                    m.weight.fill_(1.0)
            alone, together = model(x[:1]).pooled, model(x).pooled[:1]
        # fp32 convolutions of another batch size may sum in another order: ~1e-6 relative
        assert torch.allclose(alone, together, rtol=1e-5, atol=1e-5) is independent, norm


@pytest.mark.parametrize("changes, message", [
    (dict(depths=[1]), r"CNNConfig.depths=\[1\] is not allowed; expected one entry per stage"),
    (dict(groups=3), r"CNNConfig.groups=3 is not allowed; expected a divisor of every width \[8, 16\]"),
    (dict(widths=[8, 0]), "CNNConfig.widths"),
    (dict(norm="layernorm"), "CNNConfig.norm='layernorm' is not allowed; expected one of 'groupnorm', 'batchnorm'"),
])
def test_bad_configs_name_the_field(changes, message):
    with pytest.raises(ConfigError, match=message):
        CNNConfig(**{**TINY, **changes})
