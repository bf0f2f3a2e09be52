import json

import pytest
import torch

from formers.data import Tokenizer, TokenizerConfig, load_corpus, train_tokenizer
from formers.errors import CheckpointError, ConfigError, DataError, TokenOutOfVocabError

TRICKY = "def f(x):\n\treturn  x   # tabs, runs of spaces\r\nnaïve café 日本語 👍🏽 <eos> <pad> \x00 end \n"
UNSEEN = "Ωμέγα ∑ ∞ ≠ Привет мир 🚀 ñ \u200b zero-width \U0001f600\n\n\n"


@pytest.fixture(scope="module")
def pydocs() -> str:
    return load_corpus("pydocs")[:200_000]


@pytest.fixture(scope="module")
def bpe(pydocs) -> Tokenizer:
    return train_tokenizer(TokenizerConfig(kind="bpe", vocab_size=512), pydocs)


@pytest.fixture(scope="module")
def char() -> Tokenizer:
    return train_tokenizer(TokenizerConfig(kind="char"), TRICKY)


def test_char_round_trip_is_exact(char):
    ids = char.encode(TRICKY)
    assert len(ids) == len(TRICKY)  # one token per code point
    assert char.decode(ids) == TRICKY


def test_char_special_ids_and_vocab(char):
    assert (char.pad_id, char.eos_id, char.unk_id) == (0, 1, 2)
    assert char.vocab_size == 3 + len(set(TRICKY))


def test_char_unknown_characters_map_to_unk(char):
    ids = char.encode("xZ\u2603")  # "x" is in TRICKY, "Z" and the snowman are not
    assert ids[1:] == [char.unk_id, char.unk_id]
    assert ids[0] == char.token_to_id("x") != char.unk_id
    assert char.decode(ids) == "x"  # unk is special, skipped by default
    assert char.decode(ids, skip_special_tokens=False) == "x<unk><unk>"


def test_special_tokens_in_text_are_plain_text(char, bpe):
    # A user typing "<eos>" must not forge the end-of-sequence id, and the text must round-trip.
    for tok in (char, bpe):
        ids = tok.encode("a<eos>b")
        assert tok.eos_id not in ids and tok.pad_id not in ids
        assert tok.decode(ids) == "a<eos>b"


def test_decode_skips_special_ids_unless_asked(char):
    ids = [char.eos_id, *char.encode("end"), char.pad_id]
    assert char.decode(ids) == "end"
    assert char.decode(ids, skip_special_tokens=False) == "<eos>end<pad>"


def test_bpe_round_trips_training_and_unseen_text(bpe, pydocs):
    for text in (pydocs[:20_000], TRICKY, UNSEEN, ""):
        assert bpe.decode(bpe.encode(text)) == text


def test_bpe_vocab_specials_and_compression(bpe, pydocs):
    assert bpe.vocab_size == 512
    assert (bpe.pad_id, bpe.eos_id, bpe.unk_id) == (0, 1, None)
    sample = pydocs[:20_000]
    assert len(bpe.encode(sample)) < 0.5 * len(sample)  # merges were learned


def test_training_is_deterministic(bpe, pydocs):
    again = train_tokenizer(TokenizerConfig(kind="bpe", vocab_size=512), pydocs)
    assert again.backend.to_str() == bpe.backend.to_str()
    assert again.encode(UNSEEN + pydocs[-5000:]) == bpe.encode(UNSEEN + pydocs[-5000:])
    # Character vocabularies do not depend on the order of the texts either.
    assert train_tokenizer(TokenizerConfig(), ["ba", "c"]).encode("abc") == \
        train_tokenizer(TokenizerConfig(), ["c", "ab"]).encode("abc")


def test_max_chars_limits_training_text(pydocs):
    tok = train_tokenizer(TokenizerConfig(kind="char", max_chars=3), ["ab", "cd", "ef"])
    assert tok.vocab_size == 3 + 3  # specials + a, b, c
    assert tok.encode("d") == [tok.unk_id]


def test_encode_batch_pads_masks_and_matches_encode(bpe):
    texts = [TRICKY, UNSEEN, "x", ""]
    batch = bpe.encode_batch(texts)
    lengths = [len(bpe.encode(t)) for t in texts]
    assert batch["input_ids"].shape == batch["attention_mask"].shape == (4, max(lengths))
    assert batch["input_ids"].dtype == batch["attention_mask"].dtype == torch.long
    assert batch["attention_mask"].sum(1).tolist() == lengths
    for row, mask, text in zip(batch["input_ids"], batch["attention_mask"], texts, strict=True):
        assert row[mask.bool()].tolist() == bpe.encode(text)
        assert (row[~mask.bool()] == bpe.pad_id).all()


def test_encode_batch_truncates_and_refuses_ragged_rows_without_padding(bpe):
    cut = bpe.encode_batch([TRICKY, "x"], truncation=5)
    assert cut["input_ids"].shape == (2, 5) and cut["input_ids"][0].tolist() == bpe.encode(TRICKY)[:5]
    with pytest.raises(DataError, match="padding=True"):
        bpe.encode_batch([TRICKY, "x"], padding=False)
    assert bpe.encode_batch(["ab", "cd"], padding=False)["input_ids"].shape == (2, len(bpe.encode("ab")))
    with pytest.raises(DataError, match="truncation=True needs the tokenizer's max_length"):
        bpe.encode_batch(["x"], truncation=True)
    assert bpe.encode_batch([])["input_ids"].shape == (0, 0)


@pytest.mark.parametrize("kind", ["char", "bpe"])
def test_our_tokenizers_add_no_special_tokens(kind, char, bpe):
    tok = char if kind == "char" else bpe  # no post-processor: add_special_tokens changes nothing
    assert tok.encode(TRICKY) == tok.encode(TRICKY, add_special_tokens=False)


def test_decode_accepts_tensor_and_rejects_out_of_vocab(bpe):
    ids = bpe.encode(TRICKY)
    assert bpe.decode(torch.tensor(ids)) == TRICKY
    with pytest.raises(TokenOutOfVocabError, match="512"):
        bpe.decode([5, 512])
    with pytest.raises(TokenOutOfVocabError, match="-1"):
        bpe.decode(torch.tensor([-1]))


@pytest.mark.parametrize("kind", ["char", "bpe"])
def test_save_load_gives_same_ids(kind, char, bpe, tmp_path):
    tok = char if kind == "char" else bpe
    tok.save(tmp_path / "ckpt")
    assert json.loads((tmp_path / "ckpt" / "tokenizer.json").read_text())["model"]["type"]
    for path in (tmp_path / "ckpt", tmp_path / "ckpt" / "tokenizer.json"):
        loaded = Tokenizer.load(path)
        assert loaded.vocab_size == tok.vocab_size
        assert (loaded.pad_id, loaded.eos_id, loaded.unk_id) == (tok.pad_id, tok.eos_id, tok.unk_id)
        for text in (TRICKY, UNSEEN, "a<eos>b"):
            assert loaded.encode(text) == tok.encode(text)
            assert loaded.decode(loaded.encode(text)) == tok.decode(tok.encode(text))


def test_settings_beside_tokenizer_json_round_trip(char, tmp_path):
    char.save(tmp_path / "ours")
    assert not (tmp_path / "ours" / "tokenizer_config.json").exists()  # our defaults need no file
    other = Tokenizer(char.backend, pad_token="<eos>", eos_token=None, max_length=7)
    other.save(tmp_path / "other")
    assert json.loads((tmp_path / "other" / "tokenizer_config.json").read_text()) == {
        "pad_token": "<eos>", "unk_token": "<unk>", "model_max_length": 7}
    loaded = Tokenizer.load(tmp_path / "other")
    assert (loaded.pad_id, loaded.eos_id, loaded.unk_id, loaded.max_length) == (char.eos_id, None, char.unk_id, 7)
    assert loaded.encode_batch([TRICKY], truncation=True)["input_ids"].shape == (1, 7)


def test_hugging_face_settings_files_are_read(char, tmp_path):
    char.save(tmp_path)
    (tmp_path / "special_tokens_map.json").write_text(json.dumps({"pad_token": {"content": "<eos>"}}))
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"unk_token": "<pad>", "model_max_length": 1e30}))
    loaded = Tokenizer.load(tmp_path)  # AddedToken dicts are read by content; 1e30 means "no limit known"
    assert (loaded.pad_id, loaded.eos_id, loaded.unk_id, loaded.max_length) == (char.eos_id, None, char.pad_id, None)


def test_load_missing_or_corrupt_raises_checkpoint_error(tmp_path):
    with pytest.raises(CheckpointError, match="no tokenizer at .*tokenizer.json"):
        Tokenizer.load(tmp_path)
    bad = tmp_path / "tokenizer.json"
    bad.write_text("{ not json")
    with pytest.raises(CheckpointError, match="not a valid tokenizer.json"):
        Tokenizer.load(tmp_path)


def test_config_validation_names_the_field():
    with pytest.raises(ConfigError, match=r"TokenizerConfig.vocab_size=100 .*at least 258"):
        TokenizerConfig(kind="bpe", vocab_size=100)
    TokenizerConfig(kind="char", vocab_size=100)  # char ignores vocab_size
    with pytest.raises(ConfigError, match="TokenizerConfig.kind"):
        TokenizerConfig(kind="wordpiece")
    with pytest.raises(ConfigError, match="TokenizerConfig.max_chars=0"):
        TokenizerConfig(max_chars=0)


def test_empty_training_text_raises_data_error():
    with pytest.raises(DataError, match="empty text"):
        train_tokenizer(TokenizerConfig(), "")
