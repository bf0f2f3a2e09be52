"""Typed, validated, plain-data configs.

Every config in formers is a keyword-only dataclass deriving from `Config`. Fields are
type-checked on construction (so a recipe typo fails before any work starts) and a
config round-trips through `to_dict` / `from_dict`, which is how recipes (YAML),
checkpoints (config.json) and command-line overrides (`--trainer.max_steps=50`) meet.
"""

from __future__ import annotations

import dataclasses
import re
import types
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml

from formers.errors import ConfigError

C = TypeVar("C", bound="Config")


class _RecipeLoader(yaml.SafeLoader):
    """PyYAML follows YAML 1.1, where a float needs a dot: `lr: 3e-4` would be the string "3e-4" and then
    fail the float check. YAML 1.2 (and every user) reads it as a number; so do recipes and overrides."""


_RecipeLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"), list("-+0123456789")
)


def read_yaml(text: str) -> Any:
    """YAML text as recipes and `--section.field=value` overrides mean it (`2e-3` is a float)."""
    return yaml.load(text, Loader=_RecipeLoader)  # noqa: S506 (a SafeLoader subclass: no arbitrary objects)


@dataclasses.dataclass(kw_only=True)
class Config:
    """Base of every config: validates field types after construction."""

    def __post_init__(self) -> None:
        hints = get_type_hints(type(self))
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            setattr(self, field.name, _coerce(value, hints[field.name], f"{type(self).__name__}.{field.name}"))

    @classmethod
    def from_dict(cls: type[C], data: dict[str, Any], *, where: str | None = None) -> C:
        """Build from plain data, refusing unknown keys with the list of allowed ones."""
        where = where or cls.__name__
        if not isinstance(data, dict):
            raise ConfigError(f"{where}: expected a mapping of fields, got {type(data).__name__} {data!r}")
        names = {f.name for f in dataclasses.fields(cls) if f.init}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(f"{where}: unknown field(s) {unknown}; allowed fields are {sorted(names)}")
        hints = get_type_hints(cls)
        kwargs = {k: _from_plain(v, hints[k], f"{where}.{k}") for k, v in data.items()}
        try:
            return cls(**kwargs)
        except TypeError as e:  # a required field is missing
            raise ConfigError(f"{where}: {e}") from None
        except ConfigError as e:  # name the field by its path in the recipe, not its class
            raise ConfigError(str(e).replace(f"{cls.__name__}.", f"{where}.", 1)) from None

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _to_plain(getattr(self, f.name)) for f in dataclasses.fields(self) if f.init}

    def replace(self: C, **changes: Any) -> C:
        return dataclasses.replace(self, **changes)


def check(ok: bool, where: str, value: Any, allowed: str) -> None:
    """Raise a ConfigError naming the field, the bad value and what is allowed."""
    if not ok:
        raise ConfigError(f"{where}={value!r} is not allowed; expected {allowed}")


def apply_overrides(data: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Return a copy of nested `data` with dotted keys ('trainer.max_steps') replaced."""
    out = _deep_copy(data)
    for dotted, value in overrides.items():
        node = out
        parts = dotted.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"override {dotted}: {part!r} is a value, not a section")
            node = child
        node[parts[-1]] = value
    return out


def _deep_copy(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _deep_copy(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_deep_copy(v) for v in data]
    return data


def _to_plain(value: Any) -> Any:
    if isinstance(value, Config):
        return value.to_dict()
    if isinstance(value, (list, tuple)):
        return [_to_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _to_plain(v) for k, v in value.items()}
    return value


def _is_config(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, Config)


def _from_plain(value: Any, tp: Any, where: str) -> Any:
    """Turn nested dicts into nested configs; other values are checked by `_coerce`."""
    if _is_config(tp) and isinstance(value, dict):
        return tp.from_dict(value, where=where)
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        for arg in get_args(tp):
            if _is_config(arg) and isinstance(value, dict):
                return arg.from_dict(value, where=where)
    return value


def _describe(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in get_args(tp))
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check `value` against the annotation `tp`; widen int to float; lists to tuples."""
    if tp is Any:
        return value
    origin = get_origin(tp)
    if origin is Literal:
        if value in get_args(tp) and type(value) in {type(a) for a in get_args(tp)}:
            return value
        raise ConfigError(f"{where}={value!r} is not allowed; expected {_describe(tp)}")
    if origin in (Union, types.UnionType):
        for arg in get_args(tp):
            try:
                return _coerce(value, arg, where)
            except ConfigError:
                continue
        raise ConfigError(f"{where}={value!r} is not allowed; expected {_describe(tp)}")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}={value!r} is not allowed; expected a list")
        args = get_args(tp)
        item_tp = args[0] if args else Any
        items = [_coerce(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}={value!r} is not allowed; expected a mapping")
        return value
    if tp is type(None):
        if value is None:
            return None
        raise ConfigError(f"{where}={value!r} is not allowed; expected null")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif _is_config(tp):
        if isinstance(value, tp):
            return value
        if isinstance(value, dict):
            return tp.from_dict(value, where=where)
    elif isinstance(tp, type):
        if isinstance(value, tp):
            return value
    else:  # an annotation we do not police (e.g. Callable)
        return value
    raise ConfigError(f"{where}={value!r} is not allowed; expected {_describe(tp)}")
