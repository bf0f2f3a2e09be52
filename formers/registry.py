"""Model families by name: how a config.json's "family" becomes a config class and a model."""

from __future__ import annotations

from typing import Any

from formers.config import Config
from formers.errors import ConfigError

MODELS: dict[str, tuple[type[Config], type]] = {}


def register_model(family: str, config_cls: type[Config]):
    """Class decorator: make `family` buildable from plain data."""

    def decorate(model_cls: type) -> type:
        MODELS[family] = (config_cls, model_cls)
        model_cls.family = family
        return model_cls

    return decorate


def _ensure_loaded() -> None:
    import formers.models  # noqa: F401  (importing registers every family)


def model_config_from_dict(data: dict[str, Any], where: str = "model") -> Config:
    _ensure_loaded()
    family = data.get("family")
    if family not in MODELS:
        raise ConfigError(f"{where}.family={family!r} is not allowed; expected one of {sorted(MODELS)}")
    return MODELS[family][0].from_dict(data, where=where)


def build_model(config: Config):
    """Instantiate the model class registered for `config.family`."""
    _ensure_loaded()
    return MODELS[config.family][1](config)
