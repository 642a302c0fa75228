"""From config nodes to objects: typed checks first, then Hydra's ``instantiate``.

A config group node (dataset, partitioner, model, sampler, engine, a hook) names a class
by ``_target_``. :func:`build` checks each value against the type annotations of that
class's constructor before building it, so ``engine.threads=abc`` is one line naming the
setting, not a traceback from deep inside the class. Every failure is a
:class:`~fedsim.errors.ConfigError` (one line, exit 2 in the CLI).
"""

from __future__ import annotations

import importlib
import inspect
import types
import typing
from typing import Any, Union

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from fedsim.errors import ConfigError, first_line

HYDRA_KEYS = ("_target_", "_partial_", "_convert_", "_recursive_", "_args_")
SIMPLE_TYPES = {int: "a whole number", float: "a number", bool: "true or false", str: "a string"}


def _accepts(annotation: Any, value: Any) -> bool | None:
    """Whether ``value`` fits a simple annotation; None when the annotation is not simple."""
    if value is None:
        args = typing.get_args(annotation)
        return True if type(None) in args else (None if annotation not in SIMPLE_TYPES else False)
    if typing.get_origin(annotation) in (Union, types.UnionType):
        verdicts = [_accepts(a, value) for a in typing.get_args(annotation) if a is not type(None)]
        return None if None in verdicts else any(verdicts)
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is str:
        return isinstance(value, str)
    return None


def _describe(annotation: Any) -> str:
    names = [SIMPLE_TYPES.get(a, getattr(a, "__name__", str(a))) for a in typing.get_args(annotation) or (annotation,)
             if a is not type(None)]
    suffix = " or null" if type(None) in typing.get_args(annotation) else ""
    return " or ".join(names) + suffix


def locate(path: str) -> Any:
    """The object a dotted ``_target_`` path names (the longest importable module, then attributes)."""
    parts = path.split(".")
    for split in range(len(parts), 0, -1):
        try:
            found: Any = importlib.import_module(".".join(parts[:split]))
        except ModuleNotFoundError:
            continue
        for name in parts[split:]:
            found = getattr(found, name)
        return found
    raise ImportError(f"no module named {parts[0]!r}")


def check_arguments(node: DictConfig, setting: str) -> None:
    """Refuse values whose type does not fit the ``_target_``'s constructor annotations."""
    target_path = node.get("_target_")
    if not target_path:
        return
    try:
        target = locate(target_path)
    except Exception as exc:
        reason = first_line(exc)
        raise ConfigError(f"{setting}._target_={target_path}: cannot import it ({reason})") from None
    function = target.__init__ if inspect.isclass(target) else target
    try:
        hints = typing.get_type_hints(function)
    except Exception:  # annotations that do not resolve: leave the checks to the target
        return
    values = OmegaConf.to_container(node, resolve=True)
    for key, value in values.items():
        if key in HYDRA_KEYS or key not in hints:
            continue
        if _accepts(hints[key], value) is False:
            raise ConfigError(f"{setting}.{key}={value}: must be {_describe(hints[key])}")


def build(node: DictConfig, setting: str, **kwargs: Any) -> Any:
    """Check and instantiate a config node, reporting any failure as a one-line ConfigError."""
    check_arguments(node, setting)
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as exc:
        cause = exc.__cause__ or exc
        if isinstance(cause, ConfigError):
            raise cause from None
        raise ConfigError(f"{setting}: {first_line(cause)}") from None
    except ConfigError:
        raise
    except Exception as exc:  # e.g. a _target_ that does not import
        raise ConfigError(f"{setting}: {first_line(exc)}") from None


def without(node: DictConfig, *keys: str) -> DictConfig:
    """A copy of ``node`` without ``keys`` (e.g. a sampler's ``hooks``, which are not its arguments)."""
    plain = OmegaConf.to_container(node, resolve=True)
    return OmegaConf.create({k: v for k, v in plain.items() if k not in keys})


def build_hooks(nodes: DictConfig | None, setting: str) -> list[Any]:
    """Instantiate a ``name -> {_target_: ...}`` mapping of hooks, in the mapping's order."""
    if not nodes:
        return []
    return [build(node, f"{setting}.{name}") for name, node in nodes.items() if node is not None]
