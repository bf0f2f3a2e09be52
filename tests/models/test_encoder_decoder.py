"""The encoder-decoder model beyond the contract battery: presets, memory, cache, limits."""

import math

import pytest
import torch

from formers.errors import ConfigError, SequenceTooLongError
from formers.models import BartConfig, EncoderDecoder, T5Config, TransformerConfig

TINY = dict(vocab_size=50, d_model=32, n_heads=4, n_layers=2, max_seq_len=16, dropout=0.0)
PRESETS = [TransformerConfig, T5Config, BartConfig]


def build(cls, **kw):
    torch.manual_seed(0)
    return EncoderDecoder(cls(**{**TINY, **kw})).eval()


@pytest.mark.parametrize("cls", PRESETS, ids=lambda c: c.__name__)
def test_source_padding_is_ignored_and_memory_reused(cls):
    model = build(cls)
    src, tgt = torch.randint(3, 50, (1, 5)), torch.randint(3, 50, (1, 4))
    padded = torch.cat([src, torch.zeros(1, 3, dtype=torch.long)], 1)
    mask = torch.tensor([[1] * 5 + [0] * 3])
    alone = model(src, decoder_input_ids=tgt)
    torch.testing.assert_close(model(padded, mask, decoder_input_ids=tgt).logits, alone.logits, atol=1e-5, rtol=1e-5)
    memory = model.encode(padded, mask)
    again = model(attention_mask=mask, decoder_input_ids=tgt, encoder_outputs=memory)
    torch.testing.assert_close(again.logits, alone.logits, atol=1e-5, rtol=1e-5)
    assert again.encoder_last_hidden_state is memory


@pytest.mark.parametrize("cls", PRESETS, ids=lambda c: c.__name__)
def test_cached_decoding_equals_one_full_pass(cls):
    model = build(cls)
    src, tgt = torch.randint(3, 50, (2, 6)), torch.randint(3, 50, (2, 5))
    memory = model.encode(src)
    cache = model.new_cache(2, 5, dtype=torch.float32, device=torch.device("cpu"))
    steps = [model(decoder_input_ids=tgt[:, i:i + 1], encoder_outputs=memory, cache=cache).logits for i in range(5)]
    torch.testing.assert_close(torch.cat(steps, 1), model(src, decoder_input_ids=tgt).logits, atol=1e-5, rtol=1e-4)
    assert all(static.kv is not None for static in cache.cross_attention)  # projected once, at the first step


def test_presets_are_build_time_choices():
    t, t5, bart = build(TransformerConfig), build(T5Config), build(BartConfig)
    assert t.embed_scale == math.sqrt(32) and t5.embed_scale == 1.0 and bart.embed_scale == 1.0
    assert t5.head_scale == 32**-0.5 and t.head_scale == 1.0  # Mesh TF T5 rescales before its tied head
    assert t5.lm_head.bias is None and bart.lm_head.bias is not None  # BART's final_logits_bias
    assert bart.encoder_positions.learned.table.weight.shape == (16 + 2, 32)  # fairseq's offset of 2
    assert sum(p.numel() for n, p in t5.named_parameters() if n.endswith("bias")) == 0
    assert t.lm_head.weight is t.token_embedding.weight
    assert build(T5Config, tie_weights=False).lm_head.weight is not t5.token_embedding.weight


def test_bad_use_is_refused():
    model = build(BartConfig)
    with pytest.raises(SequenceTooLongError, match="17 tokens.*max_seq_len=16"):
        model.encode(torch.ones(1, 17, dtype=torch.long))
    with pytest.raises(ConfigError, match="decoder_input_ids is required.*decoder_start_token_id=2"):
        model(torch.ones(1, 3, dtype=torch.long))
    with pytest.raises(ConfigError, match="position_offset=2 is not allowed"):
        TransformerConfig(position_offset=2)
    with pytest.raises(ConfigError, match="decoder_start_token_id=60 is not allowed"):
        T5Config(**TINY, decoder_start_token_id=60)
