"""The VQ-VAE tokenizer and the PatchGAN it may carry: shapes, encode/decode, errors, a tiny fit."""

import pytest
import torch

from formers.errors import ConfigError, ImageInputError, TokenOutOfVocabError
from formers.io import load, save_model
from formers.models import VQVAE, PatchGANConfig, VQVAEConfig
from formers.nn.quantize import EMACodebook, LearnedCodebook, QuantizerConfig
from formers.objectives import ImageLossConfig, ImageReconstruction


def tiny(**changes) -> VQVAEConfig:
    fields = dict(n_channels=1, image_size=8, hidden=16, n_downsample=1, n_res_blocks=1, pixel_mean=[0.3],
                  pixel_std=[0.4], quantizer=QuantizerConfig(codebook_size=16, code_dim=4))
    return VQVAEConfig(**{**fields, **changes})


def test_shapes_and_the_fashion_mnist_grid():
    model = VQVAE(VQVAEConfig(n_channels=1, image_size=28, hidden=8, pixel_mean=[0.3], pixel_std=[0.4]))
    out = model(torch.randn(3, 1, 28, 28))
    assert out.reconstruction.shape == (3, 1, 28, 28) and out.codes.shape == (3, 7, 7)
    assert model.config.grid_size == 7 and model.config.bits_per_image == 49 * 8


def test_encode_then_decode_is_forward_in_eval_mode():
    model = VQVAE(tiny()).eval()
    x = torch.randn(2, 1, 8, 8)
    out = model(x)
    codes = model.encode(x)
    assert torch.equal(codes, out.codes) and codes.shape == (2, 4, 4)
    torch.testing.assert_close(model.decode(codes), out.reconstruction)


def test_encode_and_eval_forward_leave_the_codebook_alone():
    model = VQVAE(tiny()).eval()
    before = {k: v.clone() for k, v in model.quantizer.state_dict().items()}
    model(torch.randn(2, 1, 8, 8))
    model.encode(torch.randn(2, 1, 8, 8))
    for k, v in model.quantizer.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_quantizer_kind_is_a_module_choice():
    assert isinstance(VQVAE(tiny()).quantizer, EMACodebook)
    learned = VQVAE(tiny(quantizer=QuantizerConfig(kind="learned", codebook_size=16, code_dim=4)))
    assert isinstance(learned.quantizer, LearnedCodebook)


def test_to_unit_pixels_undoes_the_normalisation():
    model = VQVAE(tiny())
    x = torch.tensor([0.0, 0.3, 0.7, 1.0]).reshape(1, 1, 2, 2)
    torch.testing.assert_close(model.to_unit_pixels((x - 0.3) / 0.4), x)


def test_bad_inputs_are_refused():
    model = VQVAE(tiny())
    with pytest.raises(ImageInputError, match="image_size=8"):
        model(torch.randn(1, 1, 12, 12))
    with pytest.raises(TokenOutOfVocabError, match=r"\[0, 16\)"):
        model.decode(torch.full((1, 4, 4), 16))
    with pytest.raises(ConfigError, match="image_size=30"):
        tiny(image_size=30, n_downsample=2)
    with pytest.raises(ConfigError, match="pixel_mean"):
        tiny(pixel_mean=[0.1, 0.2])


def test_save_and_load_round_trip_with_a_discriminator(tmp_path):
    model = VQVAE(tiny(discriminator=PatchGANConfig(n_channels=1, width=8, n_layers=1)))
    save_model(model, tmp_path)
    again = load(tmp_path)
    x = torch.randn(2, 1, 8, 8)
    torch.testing.assert_close(again(x).reconstruction, model.eval()(x).reconstruction)
    torch.testing.assert_close(again.discriminator(x), model.discriminator(x))


def test_a_few_steps_reduce_the_reconstruction_loss(one_thread):
    torch.manual_seed(0)
    model = VQVAE(tiny())
    objective = ImageReconstruction(ImageLossConfig(l2=1.0))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    x = torch.randn(16, 1, 8, 8)
    first = objective(model, {"pixel_values": x})
    for _ in range(60):
        loss = objective(model, {"pixel_values": x})["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    last = objective(model, {"pixel_values": x})
    assert last["l2"] < 0.7 * first["l2"]
    assert last["perplexity"] > 2  # more than one or two codes in use
    assert set(first) >= {"loss", "l2", "commitment", "codebook", "perplexity", "psnr"}
