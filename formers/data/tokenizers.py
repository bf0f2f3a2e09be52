"""Tokenizers: characters, byte-level BPE and whole words, built and stored with Hugging Face `tokenizers`.

Every kind is a `tokenizers.Tokenizer` underneath (kept as `.backend` for interop), so a
trained tokenizer is one `tokenizer.json` file that any Hugging Face tool can read.

- `char`: every Unicode character of the training text is one token. Ids 0, 1, 2 are
  `<pad>`, `<eos>`, `<unk>`; a character never seen in training encodes to `<unk>`.
- `bpe`: byte-level BPE as in GPT-2 (Radford et al. 2019): text is mapped to its UTF-8
  bytes first, so every string encodes and decodes back exactly, seen in training or not.
  Ids 0, 1 are `<pad>`, `<eos>`; there is no `<unk>` because no byte is ever unknown.
- `word`: a fixed vocabulary of whole words (a WordLevel model), for small closed languages such as
  the Shapes captions. Text is lower-cased and split at whitespace and punctuation ("disc," -> "disc",
  ","); a word outside the vocabulary encodes to `[UNK]`. Ids 0-6 are the BERT-style specials
  `[PAD] [UNK] [CLS] [SEP] [MASK] [BOS] [EOS]`, then the words in sorted order. Decoding joins words
  with spaces and re-attaches `. , ? !` (BERT's cleanup, which also writes " do not" as " don't"), so
  lower-case text with single spaces round-trips exactly.

Special tokens written inside the text ("<eos>" typed by a user) are encoded as ordinary
characters, never as the special id: text always round-trips and a prompt cannot forge
an end-of-sequence.

Tokenizers of Hugging Face folders (`formers.load_tokenizer`, interop) are the same class: their
`encode` adds what the folder's post-processor adds (`[CLS] ... [SEP]`), as `transformers` does.
`encode_batch` returns padded id and attention-mask tensors, truncated on request.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import tokenizers
from tokenizers import Regex, decoders, models, normalizers, pre_tokenizers, trainers
from torch import Tensor

from formers.config import Config, check
from formers.data.batches import padded
from formers.errors import CheckpointError, DataError, TokenOutOfVocabError
from formers.storage import read_json, write_json, write_text

TOKENIZER_FILE = "tokenizer.json"
PAD, EOS, UNK = "<pad>", "<eos>", "<unk>"
CHAR_SPECIALS = [PAD, EOS, UNK]
BPE_SPECIALS = [PAD, EOS]
WORD_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[BOS]", "[EOS]"]
N_BYTES = 256
SETTINGS_FILE = "tokenizer_config.json"  # Hugging Face's name for the settings beside tokenizer.json
DEFAULT_SETTINGS = {"pad_token": PAD, "eos_token": EOS, "unk_token": UNK}


@dataclasses.dataclass(kw_only=True)
class TokenizerConfig(Config):
    kind: Literal["char", "bpe", "word"] = "char"
    # Largest vocabulary BPE may reach (256 byte tokens + specials + merges); ignored by char.
    vocab_size: int = 4096
    # Train on at most this many leading characters: BPE training time grows with the text.
    max_chars: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.kind == "bpe":
            least = N_BYTES + len(BPE_SPECIALS)
            check(self.vocab_size >= least, "TokenizerConfig.vocab_size", self.vocab_size,
                  f"at least {least} for kind='bpe' ({N_BYTES} byte tokens + {len(BPE_SPECIALS)} specials)")
        if self.max_chars is not None:
            check(self.max_chars >= 1, "TokenizerConfig.max_chars", self.max_chars, "a positive count or null")


class Tokenizer:
    """Text <-> token ids. A thin wrapper over `tokenizers.Tokenizer`, kept as `.backend`.

    `encode` follows the backend's own post-processor, as Hugging Face does: a tokenizer loaded
    from a BERT folder wraps text in `[CLS] ... [SEP]`, a T5 one appends `</s>`; ours (char, BPE)
    have no post-processor, so they add nothing. `add_special_tokens=False` gives the bare ids
    (token streams, prompts that are concatenated with responses).

    The names of the padding, end and unknown tokens and the longest input the tokenizer's model
    takes (`max_length`, Hugging Face's `model_max_length`) are kept beside tokenizer.json in
    Hugging Face's tokenizer_config.json, written only when they differ from ours.
    """

    def __init__(
        self,
        backend: tokenizers.Tokenizer,
        *,
        pad_token: str | None = PAD,
        eos_token: str | None = EOS,
        unk_token: str | None = UNK,
        max_length: int | None = None,
    ) -> None:
        self.backend = backend
        # Not stored in tokenizer.json, so it is set here for trained and loaded tokenizers alike.
        self.backend.encode_special_tokens = True
        self.pad_token, self.eos_token, self.unk_token = pad_token, eos_token, unk_token
        if max_length is not None and max_length < 1:
            raise DataError(f"max_length={max_length} must be a positive number of tokens, or None for no limit")
        self.max_length = max_length

    @property
    def vocab_size(self) -> int:
        return self.backend.get_vocab_size(with_added_tokens=True)

    def _special(self, *spellings: str) -> int | None:
        """The id of the first spelling the vocabulary holds (`<pad>` here, `[PAD]` in BERT-style ones)."""
        for token in spellings:
            if (i := self.backend.token_to_id(token)) is not None:
                return i
        return None

    @property
    def pad_id(self) -> int | None:
        return self.token_to_id(self.pad_token)

    @property
    def eos_id(self) -> int | None:
        return self.token_to_id(self.eos_token)

    @property
    def unk_id(self) -> int | None:
        return self.token_to_id(self.unk_token)

    @property
    def bos_id(self) -> int | None:
        return self._special("<bos>", "[BOS]")

    @property
    def cls_id(self) -> int | None:
        return self._special("<cls>", "[CLS]")

    @property
    def sep_id(self) -> int | None:
        return self._special("<sep>", "[SEP]")

    @property
    def mask_id(self) -> int | None:
        return self._special("<mask>", "[MASK]")

    def token_to_id(self, token: str | None) -> int | None:
        return None if token is None else self.backend.token_to_id(token)

    def encode(self, text: str, *, add_special_tokens: bool = True) -> list[int]:
        """Token ids of `text`, with the special tokens the tokenizer's post-processor adds (if any)."""
        return self.backend.encode(text, add_special_tokens=add_special_tokens).ids

    def encode_batch(
        self,
        texts: Sequence[str],
        *,
        padding: bool = True,
        truncation: int | bool | None = None,
        add_special_tokens: bool = True,
    ) -> dict[str, Tensor]:
        """texts -> {"input_ids" (B, T), "attention_mask" (B, T) 1 = real token}, long tensors.

        `padding=True` right-pads every row to the longest with `pad_id` (0 when the tokenizer has
        no padding token: those positions are masked out); `padding=False` requires equal lengths.
        `truncation` cuts each text to that many tokens, special tokens included (the closing
        `[SEP]` is kept, as in Hugging Face); `True` means `max_length`; None or False: no cut.
        """
        limit = self.max_length if truncation is True else (truncation or None)
        if truncation is True and limit is None:
            raise DataError("truncation=True needs the tokenizer's max_length; give the limit: truncation=N")
        n_special = self.backend.num_special_tokens_to_add(False) if add_special_tokens else 0
        if limit is not None and limit <= n_special:
            raise DataError(f"truncation={limit} leaves no room for text beside {n_special} special tokens")
        ids = []
        for enc in self.backend.encode_batch(list(texts), add_special_tokens=False):
            if limit is not None:
                enc.truncate(limit - n_special)
            ids.append(self.backend.post_process(enc, add_special_tokens=add_special_tokens).ids)
        if not padding and len({len(i) for i in ids}) > 1:
            raise DataError(f"texts encode to {sorted({len(i) for i in ids})} tokens; pass padding=True to pad them")
        return padded(ids, 0 if self.pad_id is None else self.pad_id)

    def decode(self, ids: Sequence[int] | Tensor, skip_special_tokens: bool = True) -> str:
        """Text of `ids` (a list or a 1-D tensor); refuses ids outside the vocabulary."""
        if isinstance(ids, Tensor):
            if ids.dim() != 1:
                raise TokenOutOfVocabError(f"decode takes one sequence (1-D ids), got shape {tuple(ids.shape)}")
            ids = ids.tolist()
        ids = [int(i) for i in ids]
        # The backend silently drops unknown ids; a wrong vocab_size would then go unnoticed.
        bad = [i for i in ids if not 0 <= i < self.vocab_size]
        if bad:
            raise TokenOutOfVocabError(
                f"token ids {bad[:5]} are outside this tokenizer's vocabulary [0, {self.vocab_size}); "
                "was the model trained with a different tokenizer?"
            )
        return self.backend.decode(ids, skip_special_tokens=skip_special_tokens)

    def settings(self) -> dict[str, Any]:
        """What tokenizer_config.json holds, in Hugging Face's names (None values left out)."""
        values = {"pad_token": self.pad_token, "eos_token": self.eos_token, "unk_token": self.unk_token,
                  "model_max_length": self.max_length}
        return {k: v for k, v in values.items() if v is not None}

    def save(self, folder: str | Path) -> None:
        """Write `folder/tokenizer.json` (and tokenizer_config.json when the settings are not ours), atomically."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        write_text(folder / TOKENIZER_FILE, self.backend.to_str(pretty=True))
        if self.settings() != DEFAULT_SETTINGS:
            write_json(folder / SETTINGS_FILE, self.settings())

    @classmethod
    def load(cls, path: str | Path) -> Tokenizer:
        """Read a tokenizer from a folder holding tokenizer.json (and its settings), or from the file itself."""
        path = Path(path)
        file = path / TOKENIZER_FILE if path.is_dir() else path
        if not file.is_file():
            raise CheckpointError(
                f"no tokenizer at {file}: point to a tokenizer.json file or a folder that contains one "
                "(Tokenizer.save writes it)"
            )
        try:
            backend = tokenizers.Tokenizer.from_file(str(file))
        except Exception as e:  # the Rust side raises a bare Exception for any parse failure
            raise CheckpointError(f"{file} is not a valid tokenizer.json ({e}); re-save or retrain it") from None
        return cls(backend, **read_settings(file.parent))

    def __repr__(self) -> str:
        return f"Tokenizer(model={type(self.backend.model).__name__}, vocab_size={self.vocab_size})"


def read_settings(folder: Path) -> dict[str, Any]:
    """Tokenizer keyword arguments from a folder's tokenizer_config.json and special_tokens_map.json
    (Hugging Face's files; tokenizer_config.json wins). Without either file: our own special tokens, no limit."""
    found = {}
    for name in ("special_tokens_map.json", SETTINGS_FILE):
        if (folder / name).is_file():
            found.update(read_json(folder / name))
    if not found:
        return {}
    out = {f"{kind}_token": _token_text(found.get(f"{kind}_token")) for kind in ("pad", "eos", "unk")}
    limit = found.get("model_max_length")
    # transformers writes 1e30 ("VERY_LARGE_INTEGER") for "no limit known"
    out["max_length"] = int(limit) if isinstance(limit, int | float) and 0 < limit < 1e12 else None
    return out


def _token_text(value: Any) -> str | None:
    """A special token as Hugging Face stores it: a string, or an AddedToken dict with its "content"."""
    return value.get("content") if isinstance(value, dict) else value


def train_tokenizer(config: TokenizerConfig, texts: Iterable[str] | str) -> Tokenizer:
    """Train a tokenizer of `config.kind` on `texts`; the same text always gives the same ids."""
    texts = _take_chars([texts] if isinstance(texts, str) else texts, config.max_chars)
    if not any(texts):
        raise DataError("cannot train a tokenizer on empty text: check the corpus path and max_chars")
    if config.kind == "char":
        return _train_char(texts)
    if config.kind == "word":
        return word_tokenizer(sorted({w for text in texts for w, _ in _WORD_SPLIT.pre_tokenize_str(text.lower())}))
    return _train_bpe(texts, config.vocab_size)


# Whitespace, then punctuation as words of their own: "disc, upper left?" -> disc , upper left ?
_WORD_SPLIT = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])


def word_tokenizer(words: Sequence[str]) -> Tokenizer:
    """A word-level tokenizer over `words` (WORD_SPECIALS first, then the words sorted, so the ids do not
    depend on the order given). Words must be lower case and hold no whitespace; punctuation marks are
    words of their own."""
    bad = [w for w in words if not w or w != w.lower() or any(c.isspace() for c in w) or w in WORD_SPECIALS]
    if bad:
        raise DataError(f"words {bad[:5]} cannot be vocabulary entries: give non-empty lower-case words "
                        f"without whitespace, other than the specials {WORD_SPECIALS}")
    vocab = {token: i for i, token in enumerate(WORD_SPECIALS + sorted(set(words)))}
    backend = tokenizers.Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.normalizer = normalizers.Lowercase()
    backend.pre_tokenizer = _WORD_SPLIT
    # WordPiece's decoder with no "##" pieces joins words by spaces; `cleanup` re-attaches " ." " ," " ?" " !"
    backend.decoder = decoders.WordPiece(prefix="##", cleanup=True)
    backend.add_special_tokens(WORD_SPECIALS)  # marks them special so decode can skip them
    return Tokenizer(backend, pad_token="[PAD]", eos_token="[EOS]", unk_token="[UNK]")


def _take_chars(texts: Iterable[str], max_chars: int | None) -> list[str]:
    """The leading `max_chars` characters of `texts`, still split as given."""
    out, left = [], max_chars
    for text in texts:
        if left is not None:
            text = text[:left]
            left -= len(text)
        out.append(text)
        if left == 0:
            break
    return out


def _train_char(texts: list[str]) -> Tokenizer:
    chars = sorted(set().union(*texts))  # sorted, so the ids do not depend on text order
    vocab = {token: i for i, token in enumerate(CHAR_SPECIALS + chars)}
    backend = tokenizers.Tokenizer(models.WordLevel(vocab, unk_token=UNK))
    # One piece per code point: `[\s\S]` rather than `.` because Oniguruma's `.` skips "\n".
    backend.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    # Fuse joins the pieces with nothing between them (the WordLevel default inserts spaces).
    backend.decoder = decoders.Fuse()
    backend.add_special_tokens(CHAR_SPECIALS)  # marks them special so decode can skip them
    return Tokenizer(backend)


def _train_bpe(texts: list[str], vocab_size: int) -> Tokenizer:
    backend = tokenizers.Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=BPE_SPECIALS,
        # All 256 bytes are in the vocabulary even if the training text lacks some of them.
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(texts, trainer=trainer)
    return Tokenizer(backend)
