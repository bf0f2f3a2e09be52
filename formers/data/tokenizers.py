"""Tokenizers: characters and byte-level BPE, trained and stored with Hugging Face `tokenizers`.

Both kinds are a `tokenizers.Tokenizer` underneath (kept as `.backend` for interop), so a
trained tokenizer is one `tokenizer.json` file that any Hugging Face tool can read.

- `char`: every Unicode character of the training text is one token. Ids 0, 1, 2 are
  `<pad>`, `<eos>`, `<unk>`; a character never seen in training encodes to `<unk>`.
- `bpe`: byte-level BPE as in GPT-2 (Radford et al. 2019): text is mapped to its UTF-8
  bytes first, so every string encodes and decodes back exactly, seen in training or not.
  Ids 0, 1 are `<pad>`, `<eos>`; there is no `<unk>` because no byte is ever unknown.

Special tokens written inside the text ("<eos>" typed by a user) are encoded as ordinary
characters, never as the special id: text always round-trips and a prompt cannot forge
an end-of-sequence.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal

import tokenizers
from tokenizers import Regex, decoders, models, pre_tokenizers, trainers
from torch import Tensor

from formers.config import Config, check
from formers.errors import CheckpointError, DataError, TokenOutOfVocabError
from formers.storage import write_text

TOKENIZER_FILE = "tokenizer.json"
PAD, EOS, UNK = "<pad>", "<eos>", "<unk>"
CHAR_SPECIALS = [PAD, EOS, UNK]
BPE_SPECIALS = [PAD, EOS]
N_BYTES = 256


@dataclasses.dataclass(kw_only=True)
class TokenizerConfig(Config):
    kind: Literal["char", "bpe"] = "char"
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
    """Text <-> token ids. A thin wrapper over `tokenizers.Tokenizer`, kept as `.backend`."""

    def __init__(self, backend: tokenizers.Tokenizer) -> None:
        self.backend = backend
        # Not stored in tokenizer.json, so it is set here for trained and loaded tokenizers alike.
        self.backend.encode_special_tokens = True

    @property
    def vocab_size(self) -> int:
        return self.backend.get_vocab_size(with_added_tokens=True)

    @property
    def pad_id(self) -> int | None:
        return self.backend.token_to_id(PAD)

    @property
    def eos_id(self) -> int | None:
        return self.backend.token_to_id(EOS)

    @property
    def unk_id(self) -> int | None:
        return self.backend.token_to_id(UNK)

    def token_to_id(self, token: str) -> int | None:
        return self.backend.token_to_id(token)

    def encode(self, text: str) -> list[int]:
        return self.backend.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [e.ids for e in self.backend.encode_batch(list(texts), add_special_tokens=False)]

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

    def save(self, folder: str | Path) -> None:
        """Write `folder/tokenizer.json` atomically (temporary file, fsync, rename)."""
        write_text(Path(folder) / TOKENIZER_FILE, self.backend.to_str(pretty=True))

    @classmethod
    def load(cls, path: str | Path) -> Tokenizer:
        """Read a tokenizer from a folder holding tokenizer.json, or from the file itself."""
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
        return cls(backend)

    def __repr__(self) -> str:
        return f"Tokenizer(model={type(self.backend.model).__name__}, vocab_size={self.vocab_size})"


def train_tokenizer(config: TokenizerConfig, texts: Iterable[str] | str) -> Tokenizer:
    """Train a tokenizer of `config.kind` on `texts`; the same text always gives the same ids."""
    texts = _take_chars([texts] if isinstance(texts, str) else texts, config.max_chars)
    if not any(texts):
        raise DataError("cannot train a tokenizer on empty text: check the corpus path and max_chars")
    if config.kind == "char":
        return _train_char(texts)
    return _train_bpe(texts, config.vocab_size)


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
