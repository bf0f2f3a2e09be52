"""Every typed error, raised from the Python API with a message that says what to fix."""

import json

import pytest
import torch

import formers
from formers.errors import (
    CheckpointError,
    ConfigError,
    SequenceTooLongError,
    ShapeMismatchError,
    TokenOutOfVocabError,
)
from formers.models import GPT, GPTConfig

TINY = dict(vocab_size=20, d_model=16, n_heads=2, n_layers=1, max_seq_len=8)


def test_token_ids_outside_the_vocabulary():
    model = GPT(GPTConfig(**TINY))
    with pytest.raises(TokenOutOfVocabError, match=r"token id 20 is outside the vocabulary \[0, 20\)"):
        model(torch.tensor([[1, 20]]))
    with pytest.raises(TokenOutOfVocabError, match="token id -1"):
        model(torch.tensor([[-1, 2]]))


def test_sequence_over_the_position_limit():
    model = GPT(GPTConfig(**TINY))
    with pytest.raises(SequenceTooLongError, match="max_seq_len=8"):
        model(torch.ones(1, 9, dtype=torch.long))
    with pytest.raises(SequenceTooLongError):
        formers.generate(model, torch.ones(1, 6, dtype=torch.long), max_new_tokens=5)


@pytest.mark.parametrize(
    "kw, message",
    [
        (dict(n_heads=3), "GPTConfig.n_heads=3 is not allowed; expected a divisor of d_model=16"),
        (dict(position="spiral"), "GPTConfig.position='spiral' is not allowed; expected one of 'learned'"),
        (dict(dropout=1.5), "GPTConfig.dropout=1.5"),
        (dict(n_layers="2"), "GPTConfig.n_layers='2' is not allowed; expected int"),
        (dict(vocab_size=0), "GPTConfig.vocab_size=0"),
    ],
)
def test_bad_config_values_name_field_value_and_allowed(kw, message):
    with pytest.raises(ConfigError) as info:
        GPTConfig(**{**TINY, **kw})
    assert message in str(info.value)


def test_unknown_config_key():
    with pytest.raises(ConfigError, match=r"unknown field\(s\) \['layers'\]; allowed fields are \["):
        GPTConfig.from_dict({"family": "gpt", "layers": 3})


def test_missing_and_corrupt_checkpoints(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        formers.load(tmp_path / "nowhere")
    with pytest.raises(CheckpointError, match="no complete checkpoint"):
        formers.load(tmp_path)
    formers.save_model(GPT(GPTConfig(**TINY)), tmp_path / "m")
    (tmp_path / "m" / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        formers.load(tmp_path / "m")
    formers.save_model(GPT(GPTConfig(**TINY)), tmp_path / "t")
    weights = tmp_path / "t" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        formers.load(tmp_path / "t")
    with pytest.raises(CheckpointError, match="tokenizer"):
        formers.load_tokenizer(tmp_path / "t")
    formers.save_model(GPT(GPTConfig(**TINY)), tmp_path / "f")
    weights = tmp_path / "f" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit in the middle of the weights
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="model.safetensors is corrupt: .* checksum"):
        formers.load(tmp_path / "f")


def test_shape_mismatch_lists_the_keys(tmp_path):
    formers.save_model(GPT(GPTConfig(**TINY)), tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["d_model"] = 32
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ShapeMismatchError, match=r"mismatched \['positions.table.weight: checkpoint \(8, 16\)"):
        formers.load(tmp_path)
