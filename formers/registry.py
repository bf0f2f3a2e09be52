"""Model families by name: the one static table of which families exist, imported when asked for.

A checkpoint's config.json names its "family"; FAMILIES maps that name to the module holding
the model and the names of its model and config classes. Nothing registers itself on import,
so import order never matters: a reward-model checkpoint loads in a fresh process as a GPT does.
Adding a family is one line in FAMILIES.
"""

from __future__ import annotations

import importlib
from typing import Any, NamedTuple

from formers.config import Config
from formers.errors import ConfigError


class Family(NamedTuple):
    module: str  # imported on first use
    model: str  # the model class in `module`, built as model(config)
    config: str  # its config class in `module` (a dataclass whose `family` field defaults to the name)


FAMILIES: dict[str, Family] = {
    "gpt": Family("formers.models.gpt", "GPT", "GPTConfig"),
    "bert": Family("formers.models.bert", "Bert", "BertConfig"),
    "transformer": Family("formers.models.encoder_decoder", "EncoderDecoder", "TransformerConfig"),
    "t5": Family("formers.models.encoder_decoder", "EncoderDecoder", "T5Config"),
    "bart": Family("formers.models.encoder_decoder", "EncoderDecoder", "BartConfig"),
    "lstm": Family("formers.models.lstm", "LSTM", "LSTMConfig"),
    "sequence_classifier": Family("formers.models.heads", "SequenceClassifier", "SequenceClassifierConfig"),
    "token_classifier": Family("formers.models.heads", "TokenClassifier", "TokenClassifierConfig"),
    "span_qa": Family("formers.models.heads", "SpanQA", "SpanQAConfig"),
    "reward_model": Family("formers.alignment.reward", "RewardModel", "RewardModelConfig"),
    "captioner": Family("formers.models.captioner", "Captioner", "CaptionerConfig"),
    "clip": Family("formers.models.clip", "CLIP", "CLIPConfig"),
    "cnn": Family("formers.models.cnn", "CNN", "CNNConfig"),
    "coattention": Family("formers.models.coattention", "CoAttention", "CoAttentionConfig"),
    "dalle": Family("formers.models.dalle", "DALLE", "DALLEConfig"),
    "late_fusion": Family("formers.models.late_fusion", "LateFusion", "LateFusionConfig"),
    "patchgan": Family("formers.models.patchgan", "PatchGAN", "PatchGANConfig"),
    "visualbert": Family("formers.models.visualbert", "VisualBert", "VisualBertConfig"),
    "vit": Family("formers.models.vit", "ViT", "ViTConfig"),
    "vlp": Family("formers.models.vlp", "VLP", "VLPConfig"),
    "vqvae": Family("formers.models.vqvae", "VQVAE", "VQVAEConfig"),
}


def family_classes(name: str, where: str = "model") -> tuple[type[Config], type]:
    """(config class, model class) of a family, importing its module."""
    if name not in FAMILIES:
        raise ConfigError(f"{where}.family={name!r} is not allowed; expected one of {sorted(FAMILIES)}")
    entry = FAMILIES[name]
    module = importlib.import_module(entry.module)
    return getattr(module, entry.config), getattr(module, entry.model)


def model_config_from_dict(data: dict[str, Any], where: str = "model") -> Config:
    """A model config from plain data (a recipe's `model:`, a config.json), by its "family"."""
    return family_classes(data.get("family"), where)[0].from_dict(data, where=where)


def build_model(config: Config):
    """Instantiate the model class of `config.family`."""
    return family_classes(config.family)[1](config)


def config_class_of(model_cls: type) -> type[Config]:
    """The config class of a model class that serves exactly one family (the task heads)."""
    names = [n for n, f in FAMILIES.items() if (f.module, f.model) == (model_cls.__module__, model_cls.__name__)]
    if len(names) != 1:
        raise ConfigError(f"{model_cls.__name__} serves families {names}; name the config class instead")
    return family_classes(names[0])[0]
