"""Text corpora that need no download: Python's own documentation, or the user's files."""

from __future__ import annotations

from pathlib import Path

from formers.errors import DataError

PYDOCS = "pydocs"


def pydoc_topics() -> dict[str, str]:
    """The topics of Python's documentation (`pydoc_data.topics`), sorted by key.

    Read from the running interpreter at call time, so the text is never copied into this
    repository; about 465k characters of English technical prose.
    """
    try:
        from pydoc_data.topics import topics
    except ImportError:
        raise DataError(
            "this Python has no pydoc_data module (some minimal installs strip it); "
            "install the full Python standard library or point the corpus at your own text files"
        ) from None
    return {key: topics[key] for key in sorted(topics)}


def load_corpus(source: str) -> str:
    """Text of `source`: "pydocs", a UTF-8 text file, or a folder whose *.txt files are joined."""
    if source == PYDOCS:
        return _non_empty("\n\n".join(pydoc_topics().values()), PYDOCS)
    path = Path(source).expanduser()
    if path.is_dir():
        files = sorted(path.glob("*.txt"))
        if not files:
            raise DataError(f"corpus folder {path} holds no *.txt files; add some or point to a file")
        return _non_empty("\n\n".join(_read(f) for f in files), str(path))
    if path.is_file():
        return _non_empty(_read(path), str(path))
    raise DataError(f"corpus {source!r} not found: use {PYDOCS!r}, a UTF-8 text file, or a folder of *.txt files")


def split_text(text: str, val_fraction: float) -> tuple[str, str]:
    """(train, validation): the last `val_fraction` of the characters is validation."""
    if not 0 < val_fraction < 1:
        raise DataError(f"val_fraction={val_fraction!r} must lie strictly between 0 and 1")
    cut = len(text) - round(len(text) * val_fraction)  # round: 0.29 * 100 is 28.999...
    train, val = text[:cut], text[cut:]
    if not train or not val:
        raise DataError(
            f"splitting {len(text)} characters with val_fraction={val_fraction} leaves an empty "
            f"{'training' if not train else 'validation'} part; use more text or a fraction nearer 0.5"
        )
    return train, val


def _read(path: Path) -> str:
    # Decoding the bytes ourselves keeps "\r\n" as written (read_text would translate it);
    # utf-8-sig drops a leading byte-order mark, which is not part of the text.
    try:
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(
            f"{path} is not UTF-8 text (byte {e.start}: {e.reason}); re-encode it as UTF-8 "
            f"(e.g. iconv -f latin1 -t utf-8) or remove it from the corpus"
        ) from None


def _non_empty(text: str, source: str) -> str:
    if not text.strip():
        raise DataError(f"corpus {source} is empty (or only whitespace); add text to it")
    return text
