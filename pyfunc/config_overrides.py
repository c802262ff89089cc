"""Command-line overrides of a YAML experiment config: ``train.epochs=40``, ``train.augment.musan_dir=/data``.

A recipe writes the *effective* config (the base YAML plus its overrides, checked
against the schema of :mod:`pyfunc.config`) once, and every stage reads that file.
Values are parsed as YAML scalars or flow lists (``true``, ``0.5``, ``[3, 7]``,
``/abs/path``), so an override has the type it would have in the file.
"""

from __future__ import annotations

from typing import Any, Sequence

import yaml

from pyfunc.config import Config, canonical_key, config_from_dict, config_to_dict, read_config_yaml, save_config
from pyfunc.data.atomic import PathLike
from pyfunc.errors import ConfigError


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"a.b.c=value"`` -> (["a", "b", "c"], parsed value); ConfigError when malformed."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not part or part != part.strip() for part in key.split(".")):
        raise ConfigError(f"override {text!r}: expected KEY=VALUE with a dotted KEY such as train.epochs=40")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as err:
        raise ConfigError(f"override {text!r}: value is not valid YAML: {err}") from None
    return canonical_key(key).split("."), value


def apply_overrides(data: dict, overrides: Sequence[str], source: str = "<config>") -> Config:
    """``data`` (a config as a plain dict) with each ``KEY=VALUE`` set in turn, checked as a Config.

    Keys are checked by the schema: an unknown key or a wrong type is a ConfigError
    naming the override.
    """
    tree = config_to_dict(config_from_dict(data, source))  # every section present, defaults filled in
    for text in overrides:
        path, value = parse_override(text)
        node = tree
        for depth, name in enumerate(path[:-1]):
            child = node.get(name)
            if not isinstance(child, dict):
                where = ".".join(path[:depth + 1])
                raise ConfigError(f"override {text!r}: {where} is not a section of the config")
            node = child
        if path[-1] not in node or isinstance(node[path[-1]], dict):
            allowed = sorted(k for k, v in node.items() if not isinstance(v, dict))
            raise ConfigError(f"override {text!r}: unknown key {'.'.join(path)}; allowed here: {', '.join(allowed)}")
        node[path[-1]] = value
    return config_from_dict(tree, f"{source} with overrides {' '.join(overrides)}" if overrides else source)


def read_config_with_overrides(base: PathLike, overrides: Sequence[str] = ()) -> Config:
    """``base`` read with ``overrides`` applied, checked against the schema."""
    return apply_overrides(read_config_yaml(base), overrides, str(base))


def write_effective_config(base: PathLike, out: PathLike, overrides: Sequence[str] = ()) -> Config:
    """Read ``base``, apply ``overrides``, check the result and write it to ``out`` (atomically)."""
    config = read_config_with_overrides(base, overrides)
    save_config(out, config)
    return config


def get_value(config: Config, key: str) -> Any:
    """The value at a dotted ``key`` of ``config`` (e.g. ``model.frontend``); ConfigError when absent."""
    node: Any = config_to_dict(config)
    for name in key.split("."):
        if not isinstance(node, dict) or name not in node:
            raise ConfigError(f"config has no key {key!r}")
        node = node[name]
    return node


__all__ = ["apply_overrides", "get_value", "parse_override", "read_config_with_overrides", "write_effective_config"]
