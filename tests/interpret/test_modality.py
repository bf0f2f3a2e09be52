"""Modality importance, head update norms and the patch grid, against hand-computed cases."""

import pytest
import torch

from formers.errors import ConfigError
from formers.interpret.modality import head_update_norms, modality_share, token_grid, update_share


def test_share_of_attention_mass_on_image_keys():
    weights = torch.tensor([[0.1, 0.2, 0.3, 0.4], [1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    is_image = torch.tensor([False, False, True, True])
    torch.testing.assert_close(modality_share(weights, is_image), torch.tensor([0.7, 0.0, 0.0]))  # padding row: 0
    with pytest.raises(ConfigError, match="T_k=4"):
        modality_share(weights, is_image[:3])


def test_update_share_compares_what_two_sublayers_write():
    torch.testing.assert_close(update_share(torch.tensor([3.0, 0.0, 0.0]), torch.tensor([1.0, 2.0, 0.0])),
                               torch.tensor([0.25, 1.0, 0.0]))


def test_head_update_norms_are_each_heads_slice_of_the_output_projection():
    outputs = torch.zeros(1, 2, 1, 2)  # (B, H=2, T=1, D_h=2)
    outputs[0, 0, 0] = torch.tensor([1.0, 0.0])
    outputs[0, 1, 0] = torch.tensor([0.0, 2.0])
    w_out = torch.zeros(3, 4)  # (D=3, H * D_h); head 0 reads columns 0-1, head 1 columns 2-3
    w_out[:, 0] = torch.tensor([3.0, 4.0, 0.0])  # head 0's first dim -> a vector of norm 5
    w_out[:, 3] = torch.tensor([0.0, 0.0, 1.5])  # head 1's second dim -> norm 1.5, times 2
    torch.testing.assert_close(head_update_norms(outputs, w_out), torch.tensor([[[5.0], [3.0]]]))


def test_token_grid_finds_the_prefix_and_the_images_aspect():
    assert token_grid(17, 32, 32) == (1, 4, 4)  # [CLS] + 4 x 4 patches
    assert token_grid(16, 32, 32) == (0, 4, 4)  # mean-pooled ViT, a CNN's feature map
    assert token_grid(13, 16, 48) == (1, 2, 6)  # 2 x 6 keeps the 1:3 aspect
    with pytest.raises(ConfigError, match="no grid"):
        token_grid(2, 16, 48)
