"""DALL-E: text + image-grid positions, the joint vocabulary, cached generation, image-token constraint."""

import pytest
import torch

from formers.data.shapes_text import shapes_tokenizer
from formers.errors import ConfigError, SequenceTooLongError, TokenOutOfVocabError
from formers.generation import TokenRange, generate
from formers.io import load, save_model
from formers.models import GPT
from formers.models.dalle import DALLE, DALLEConfig
from formers.models.vqvae import VQVAEConfig
from formers.nn.quantize import QuantizerConfig
from formers.nn.text_image_positions import TextImagePositions
from formers.text_to_image import encode_captions, sample_images


def tiny(**changes) -> DALLE:
    vq = VQVAEConfig(n_channels=3, image_size=8, hidden=8, n_downsample=2, n_res_blocks=0,
                     quantizer=QuantizerConfig(codebook_size=12, code_dim=4))
    fields = dict(text_vocab_size=shapes_tokenizer().vocab_size, text_len=6, d_model=32, n_heads=2, n_layers=2,
                  dropout=0.0, vqvae=vq)
    torch.manual_seed(0)
    return DALLE(DALLEConfig(**{**fields, **changes})).eval()


def test_text_positions_then_row_plus_column_for_the_image():
    pos = TextImagePositions(text_len=3, grid=(2, 4), d_model=8)
    table = pos.absolute(torch.arange(11)[None])[0]  # (11, 8): 3 text + 8 image positions
    torch.testing.assert_close(table[:3], pos.text.weight)
    for cell in range(8):
        r, c = divmod(cell, 4)
        torch.testing.assert_close(table[3 + cell], pos.row.weight[r] + pos.column.weight[c])
    assert pos.position_limit == 11
    with pytest.raises(SequenceTooLongError, match="3 text tokens and a 2x4 grid"):
        pos.absolute(torch.tensor([[11]]))


def test_the_transformer_is_gpt_with_the_text_image_positions():
    model = tiny()
    assert isinstance(model.transformer, GPT)
    assert isinstance(model.transformer.positions, TextImagePositions)
    c = model.config
    assert c.n_image_tokens == 4 and c.seq_len == 10 and c.vocab_size == c.text_vocab_size + 12
    assert model.image_token_range == (c.text_vocab_size, c.text_vocab_size + 12)
    out = model(torch.randint(c.vocab_size, (2, 10)))
    assert out.logits.shape == (2, 10, c.vocab_size)


def test_the_image_tokenizer_is_frozen_and_stays_in_eval_mode():
    model = tiny().train()
    assert not model.vqvae.training and model.transformer.training
    assert not any(p.requires_grad for p in model.vqvae.parameters())
    assert all(p.requires_grad for p in model.transformer.parameters())


def test_image_tokens_round_trip_through_the_vqvae():
    model = tiny()
    pixels = torch.randn(2, 3, 8, 8)
    ids = model.image_tokens(pixels)
    start, end = model.image_token_range
    assert ids.shape == (2, 4) and int(ids.min()) >= start and int(ids.max()) < end
    expected = model.vqvae.to_unit_pixels(model.vqvae.decode(model.vqvae.encode(pixels)))
    torch.testing.assert_close(model.decode_image_tokens(ids), expected)
    with pytest.raises(TokenOutOfVocabError, match="image ids"):
        model.decode_image_tokens(ids - start)  # text ids are not image ids


def test_generation_draws_only_image_tokens_after_the_caption():
    model = tiny()
    text = encode_captions(shapes_tokenizer(), ["a red circle", "a small blue square"], model.config.text_len)
    start, end = model.image_token_range
    out = generate(model, text, max_new_tokens=4, do_sample=True, generator=torch.Generator().manual_seed(0),
                   logits_processor=TokenRange(start, end))
    assert out.shape == (2, 10) and torch.equal(out[:, :6], text)
    assert int(out[:, 6:].min()) >= start and int(out[:, 6:].max()) < end
    # without the constraint an untrained model soon draws text ids in the image part
    free = generate(model, text.repeat(8, 1), max_new_tokens=4, do_sample=True,
                    generator=torch.Generator().manual_seed(0))
    assert int(free[:, 6:].min()) < start


def test_cached_generation_equals_recomputation():
    model = tiny()
    text = encode_captions(shapes_tokenizer(), ["a red circle"], model.config.text_len)
    only = TokenRange(*model.image_token_range)
    a = generate(model, text, max_new_tokens=4, logits_processor=only)
    b = generate(model, text, max_new_tokens=4, logits_processor=only, use_cache=False)
    assert torch.equal(a, b)


def test_sample_images_shapes_and_seeding():
    model, tok = tiny(), shapes_tokenizer()
    images = sample_images(model, tok, ["a red circle", "a blue star"], n_samples=3, top_k=5,
                           generator=torch.Generator().manual_seed(1))
    assert images.shape == (2, 3, 3, 8, 8) and images.min() >= 0 and images.max() <= 1
    again = sample_images(model, tok, ["a red circle", "a blue star"], n_samples=3, top_k=5,
                          generator=torch.Generator().manual_seed(1))
    assert torch.equal(images, again)


def test_captions_too_long_for_text_len_are_refused():
    from formers.errors import DataError

    with pytest.raises(DataError, match="does not fit max_len=6"):
        encode_captions(shapes_tokenizer(), ["there is a small red circle at the top left"], 6)


def test_save_and_load_round_trip(tmp_path):
    model = tiny()
    save_model(model, tmp_path)
    again = load(tmp_path)
    ids = torch.randint(model.config.vocab_size, (1, 10))
    torch.testing.assert_close(again(ids).logits, model(ids).logits)
    assert torch.equal(again.vqvae.quantizer.weight, model.vqvae.quantizer.weight)


def test_a_tokenizer_with_a_discriminator_is_refused():
    from formers.models.patchgan import PatchGANConfig

    with pytest.raises(ConfigError, match="vqvae.discriminator"):
        DALLEConfig(vqvae=VQVAEConfig(discriminator=PatchGANConfig()))
