"""Bad checkpoints and unexportable models raise typed errors that say what is wrong."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

import formers
from formers.errors import CheckpointError, ConfigError, SequenceTooLongError, ShapeMismatchError
from formers.interop import save_hf
from formers.models import GPT, EncoderDecoder, GPTConfig, TransformerConfig
from tests.interop.references import reference


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """Reference checkpoints of two families, written once."""
    root = tmp_path_factory.mktemp("hf")
    for name in ("gpt2", "bert"):
        reference(name).save_pretrained(root / name)
    return root


def copy(folders, name, tmp_path):
    return shutil.copytree(folders / name, tmp_path / name)


def test_weights_of_another_family_list_missing_and_unexpected_keys(folders, tmp_path):
    bert = copy(folders, "bert", tmp_path)
    shutil.copy(folders / "gpt2" / "model.safetensors", bert / "model.safetensors")  # BERT config, GPT-2 weights
    with pytest.raises(ShapeMismatchError) as error:
        formers.load(bert)
    message = str(error.value)
    assert "missing ['embeddings.LayerNorm.bias'" in message  # named as the checkpoint names them
    assert "unexpected ['transformer.h.0.attn.c_attn.bias'" in message and "mismatched []" in message


def test_shapes_that_do_not_fit_the_config_are_listed(folders, tmp_path):
    gpt2 = copy(folders, "gpt2", tmp_path)
    config = json.loads((gpt2 / "config.json").read_text())
    (gpt2 / "config.json").write_text(json.dumps({**config, "n_positions": 64}))
    with pytest.raises(ShapeMismatchError, match=r"mismatched \['transformer.wpe.weight: checkpoint \(40, 32\) vs "
                                                 r"model \(64, 32\)'\]"):
        formers.load(gpt2)


def test_truncated_weights_and_missing_or_foreign_files_are_refused(folders, tmp_path):
    bert = copy(folders, "bert", tmp_path)
    weights = bert / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        formers.load(bert)
    weights.rename(bert / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="pickled .bin weights; formers reads safetensors only"):
        formers.load(bert)
    config = json.loads((bert / "config.json").read_text())
    (bert / "config.json").write_text(json.dumps({**config, "model_type": "roberta"}))
    with pytest.raises(CheckpointError, match="model_type='roberta'; formers reads .*'bart', 'bert'.*'gpt2', 't5'"):
        formers.load(bert)


def test_a_sequence_over_the_checkpoints_position_limit_is_refused(folders):
    model = formers.load(folders / "gpt2")
    with pytest.raises(SequenceTooLongError, match="41 tokens.*max_seq_len=40"):
        model(torch.ones(1, 41, dtype=torch.long))


def test_models_without_a_counterpart_are_not_exported(tmp_path):
    with pytest.raises(ConfigError, match="family 'transformer' has no Hugging Face counterpart"):
        save_hf(EncoderDecoder(TransformerConfig(vocab_size=20, d_model=16, n_heads=2)), tmp_path)
    rotary = GPT(GPTConfig(vocab_size=20, d_model=16, n_heads=2, position="rotary", norm="rmsnorm"))
    with pytest.raises(ConfigError, match=r"GPTConfig.position='rotary' \(needs 'learned'\), GPTConfig.norm='rmsnorm'"):
        save_hf(rotary, tmp_path)
    assert not any(tmp_path.iterdir())  # refused before anything was written


def test_embeddings_trained_apart_are_refused_not_dropped(tmp_path):
    import transformers as tf

    from tests.interop.references import BART

    # transformers 5 gives BART separate encoder/decoder embeddings when tie_word_embeddings=False
    bart = tf.BartForConditionalGeneration(tf.BartConfig(**BART, tie_word_embeddings=False))
    with torch.no_grad():
        bart.model.encoder.embed_tokens.weight.add_(1.0)
    bart.save_pretrained(tmp_path)
    with pytest.raises(CheckpointError, match="model.encoder.embed_tokens.weight differs from model.shared.weight"):
        formers.load(tmp_path)
