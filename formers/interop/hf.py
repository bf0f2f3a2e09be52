"""Hugging Face checkpoints (config.json + model.safetensors) in and out: GPT-2, BERT, T5, BART, ViT, CLIP, VisualBERT.

`load_hf(folder)` reads a `transformers` checkpoint folder into our model (`formers.load` calls
it when config.json names a `model_type` instead of a formers `family`); `save_hf(model, folder)`
writes one that `transformers` loads with no missing or unexpected keys. Only safetensors are
read, never pickled `.bin` files. Tokenizers come from the same folder: tokenizer.json through
the `tokenizers` library, or a WordPiece vocab.txt when that is all a BERT folder has.
"""

from __future__ import annotations

import dataclasses
import json
import os
import warnings
from pathlib import Path

import tokenizers
import torch
from safetensors.torch import save_file
from tokenizers import decoders, normalizers, pre_tokenizers, processors
from torch import nn

from formers.errors import CheckpointError, ConfigError
from formers.interop.bart import BART
from formers.interop.bert import BERT
from formers.interop.clip import CLIP
from formers.interop.gpt2 import GPT2
from formers.interop.mapping import HFFamily, check_copies, from_checkpoint, to_checkpoint
from formers.interop.t5 import T5
from formers.interop.visualbert import VISUAL_BERT
from formers.interop.vit import VIT
from formers.io import load_weights, read_config, read_weights
from formers.registry import build_model

FAMILIES: dict[str, HFFamily] = {f.model_type: f for f in (GPT2, BERT, T5, BART, VIT, CLIP, VISUAL_BERT)}
BY_FAMILY: dict[str, HFFamily] = {f.family: f for f in FAMILIES.values()}
INDEX_FILE = "model.safetensors.index.json"


def read_hf_weights(folder: Path) -> dict[str, torch.Tensor]:
    """model.safetensors, or the shards a model.safetensors.index.json lists."""
    index = folder / INDEX_FILE
    if index.is_file():
        files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        return {k: v for name in files for k, v in read_weights(folder / name).items()}
    if not (folder / "model.safetensors").is_file() and any(folder.glob("*.bin")):
        raise CheckpointError(f"{folder} has only pickled .bin weights; formers reads safetensors only (they cannot "
                              "run code when loaded): re-save the model with transformers' safe_serialization=True")
    return read_weights(folder / "model.safetensors")


def family_of(hf_config: dict, folder: Path) -> HFFamily:
    model_type = hf_config.get("model_type")
    if model_type not in FAMILIES:
        raise CheckpointError(f"{folder / 'config.json'} has model_type={model_type!r}; formers reads Hugging Face "
                              f"checkpoints of {sorted(FAMILIES)}")
    return FAMILIES[model_type]


def load_hf(folder: str | Path) -> nn.Module:
    """A transformers checkpoint folder -> our model (eval mode), weights converted by the family's table."""
    folder = Path(folder)
    hf_config = read_config(folder)
    family = family_of(hf_config, folder)
    state = read_hf_weights(folder)
    try:
        config = family.config_from_hf(hf_config, state)
    except ConfigError as e:
        raise CheckpointError(f"{folder / 'config.json'}: {e}") from None
    model = build_model(config)
    source = str(folder)
    bare = family.prefix and not any(k.startswith(family.prefix) for k in state)  # a bare BertModel, BartModel...

    def named(keys: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(k.removeprefix(family.prefix) for k in keys) if bare else keys

    rules = [dataclasses.replace(r, theirs=named(r.theirs)) for r in family.rules(config)]
    check_copies(state, [named(pair) for pair in family.copies(config)], source)
    converted, absent = from_checkpoint(state, rules, model, family.ignored(config), source)
    if absent:
        warnings.warn(f"{source} has no weights for {absent}: they keep their initial values (fine for encoding, "
                      "not for the heads' own predictions)", stacklevel=3)
    load_weights(model, converted, source=source)
    return model.eval()


def _write_atomic(path: Path, write) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save_hf(model: nn.Module, folder: str | Path, tokenizer=None) -> None:
    """Write config.json + model.safetensors (+ tokenizer.json) that `transformers` loads as is."""
    family = BY_FAMILY.get(getattr(model, "family", None))
    if family is None:
        raise ConfigError(f"a {type(model).__name__} of family {getattr(model, 'family', None)!r} has no Hugging "
                          f"Face counterpart; export works for {sorted(BY_FAMILY)}")
    hf_config = family.config_to_hf(model.config)  # refuses configs the reference cannot express
    state = to_checkpoint(model, family.rules(model.config))
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    _write_atomic(folder / "model.safetensors", lambda p: save_file(state, str(p), metadata={"format": "pt"}))
    dtype = str(next(model.parameters()).dtype).removeprefix("torch.")
    text = json.dumps({**hf_config, "dtype": dtype}, indent=2, sort_keys=True)
    _write_atomic(folder / "config.json", lambda p: p.write_text(text))
    if tokenizer is not None:
        tokenizer.save(folder)


def _wordpiece_from_vocab(folder: Path) -> tokenizers.Tokenizer:
    """BERT's tokenizer from vocab.txt alone: normalise, split on whitespace/punctuation, WordPiece, [CLS] .. [SEP]."""
    lines = (folder / "vocab.txt").read_text(encoding="utf-8").splitlines()
    vocab = {token: i for i, token in enumerate(lines)}
    settings_file = folder / "tokenizer_config.json"
    settings = json.loads(settings_file.read_text()) if settings_file.is_file() else {}
    backend = tokenizers.Tokenizer(tokenizers.models.WordPiece(vocab, unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=settings.get("tokenize_chinese_chars", True),
        strip_accents=settings.get("strip_accents"), lowercase=settings.get("do_lower_case", True),
    )
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    backend.decoder = decoders.WordPiece(prefix="##")
    backend.add_special_tokens([t for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]") if t in vocab])
    return backend


def load_hf_tokenizer(folder: str | Path):
    """The tokenizer of a Hugging Face folder, as a formers Tokenizer (`.backend.encode` adds [CLS]/[SEP]).

    Padding and truncation stored in tokenizer.json are switched off (MiniLM's pads every input to
    128 tokens): batches are padded by the caller, and over-long inputs are refused by the model.
    """
    from formers.data.tokenizers import Tokenizer

    folder = Path(folder)
    if (folder / "tokenizer.json").is_file():
        backend = Tokenizer.load(folder).backend
    elif (folder / "vocab.txt").is_file():
        backend = _wordpiece_from_vocab(folder)
    else:
        raise CheckpointError(f"{folder} has neither tokenizer.json nor vocab.txt; it carries no tokenizer")
    backend.no_padding()
    backend.no_truncation()
    return Tokenizer(backend)
