"""A run's identity: which settings make a run *this* run, decided in one place.

Two configs describe the same run when their :func:`effective_config` is equal:
- every component node with a ``_target_`` (dataset, partitioner, model, sampler,
  algorithm, engine aside) becomes its class path and **effective parameters**: the
  constructor's defaults filled in (scikit-learn's ``get_params()`` convention, so a
  missing switch and its explicit default are one run) minus the parameters the class
  says it does not read with the others given (:func:`unread_params`, e.g. HiCS-FL's
  ``temperature`` under the ``positive_part`` estimator);
- typed sections (``train``) get the schema's defaults;
- top-level settings that do not change the records are left out; which ones is declared
  beside each setting in :mod:`fedsim.config_schema` (``identity=False``).

Run folders (fresh, rerun, resume), checkpoints and ``fedsim-compare`` all use this module.
A run folder is untrusted: only fedsim's own classes (those ``conf/`` names) are imported
to find defaults; any other ``_target_`` keeps the parameters the folder lists.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from functools import lru_cache
from typing import Any, Callable, Mapping

import yaml
from omegaconf import DictConfig, OmegaConf

from fedsim.config import CONF_DIR
from fedsim.config_schema import NOT_IDENTITY, FedsimConfig, upgrade_legacy
from fedsim.configuration import HYDRA_KEYS, locate
from fedsim.streams import STREAMS_VERSION

OBSERVER_KEYS = ("hooks",)
"""Keys of a component node that attach observers (reports), not parameters of the component."""

LABEL_KEYS = ("name",)
"""Keys of a component node that name it in the records (``sampler.name``): part of the identity."""


@lru_cache(maxsize=None)
def constructor_defaults(target: Callable[..., Any]) -> dict[str, Any]:
    """Defaults of a class's (or function's) named parameters."""
    function = target.__init__ if inspect.isclass(target) else target
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return {}
    return {p.name: p.default for p in parameters
            if p.default is not inspect.Parameter.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}


def unread_params(target: Any, params: Mapping[str, Any]) -> set[str]:
    """Parameters ``target`` does not read given ``params`` (its ``unread_params`` classmethod, if any)."""
    rule = getattr(target, "unread_params", None)
    return set(rule(dict(params))) if callable(rule) else set()


def effective_params(target: Any, given: Mapping[str, Any]) -> dict[str, Any]:
    """Constructor defaults updated with ``given``, less what the target does not read, keys sorted."""
    params = {**constructor_defaults(target), **given}
    drop = unread_params(target, params)
    return {k: params[k] for k in sorted(params) if k not in drop}


def get_params(component: Any) -> dict[str, Any]:
    """A built component's effective parameters (its own ``get_params()`` if it has one).

    Otherwise read scikit-learn's way: each constructor parameter from the attribute of the
    same name, then :func:`unread_params` applied. fedsim's samplers keep every parameter so
    (``tests/test_identity.py`` checks that this equals :func:`component_params` of their
    presets); a class that keeps a parameter under another name, or not at all, shows fewer
    here, while a run's identity is computed from its config (:func:`effective_config`).
    """
    own = getattr(component, "get_params", None)
    if callable(own):
        return dict(own())
    names = constructor_defaults(type(component))
    values = {k: getattr(component, k) for k in names
              if hasattr(component, k) and not callable(getattr(component, k))}
    drop = unread_params(type(component), values)
    return {k: values[k] for k in sorted(values) if k not in drop}


@lru_cache(maxsize=1)
def known_targets() -> frozenset[str]:
    """Every ``_target_`` named by fedsim's own config files (``conf/``)."""
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "_target_" and isinstance(value, str):
                    found.add(value)
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for path in CONF_DIR.rglob("*.yaml"):
        walk(yaml.safe_load(path.read_text()))
    return frozenset(found)


def is_fedsim_target(path: str) -> bool:
    """Whether fedsim's own configs name ``path`` (what may be imported for an untrusted folder)."""
    return path in known_targets()


def trusted_target(path: str, trusted: Callable[[str], bool] | None) -> Any:
    """The object a ``_target_`` names, if it may be imported (else None)."""
    if trusted is not None and not trusted(path):
        return None
    try:
        return locate(path)
    except Exception:  # noqa: BLE001 - an unknown or renamed class keeps the parameters as listed
        return None


def component_params(node: Mapping[str, Any], trusted: Callable[[str], bool] | None = None) -> dict[str, Any]:
    """A component node as ``{"_target_": path, **effective parameters}`` (``name`` kept, ``hooks`` dropped)."""
    given = {k: v for k, v in node.items() if k not in HYDRA_KEYS + OBSERVER_KEYS + LABEL_KEYS}
    path = node.get("_target_")
    target = trusted_target(str(path), trusted) if path else None
    params = effective_params(target, given) if target is not None else {k: given[k] for k in sorted(given)}
    labels = {k: node[k] for k in LABEL_KEYS if node.get(k) is not None}
    return {"_target_": path, **labels, **params} if path else {**labels, **params}


def plain_config(cfg: DictConfig | Mapping[str, Any]) -> dict[str, Any]:
    """A config as plain data with the schema's defaults filled in and older forms upgraded."""
    plain = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else json.loads(
        json.dumps(cfg, default=str))
    upgrade_legacy(plain)
    try:
        merged = OmegaConf.merge(OmegaConf.structured(FedsimConfig), plain)
        return OmegaConf.to_container(merged, resolve=True)  # type: ignore[return-value]
    except Exception:  # noqa: BLE001 - an odd untrusted config is compared as it is
        return plain


def effective_config(cfg: DictConfig | Mapping[str, Any], trusted: Callable[[str], bool] | None = None
                     ) -> dict[str, Any]:
    """The records-defining settings of a run (see the module docstring), as plain data."""
    plain = plain_config(cfg)
    out: dict[str, Any] = {}
    for key in sorted(plain):
        value = plain[key]
        if key in NOT_IDENTITY or value is None:  # None: off (a setting added later leaves older runs alone)
            continue
        out[key] = component_params(value, trusted) if isinstance(value, dict) and "_target_" in value else value
    return out


def identity_hash(cfg: DictConfig | Mapping[str, Any], trusted: Callable[[str], bool] | None = None) -> str:
    """A short hash of :func:`effective_config`."""
    text = json.dumps(effective_config(cfg, trusted), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def run_identity(cfg: DictConfig) -> dict[str, Any]:
    """What a checkpoint must match to continue a run: its identity hash, seed, client count, streams."""
    return {"config_hash": identity_hash(cfg), "seed": int(cfg.seed), "num_clients": int(cfg.num_clients),
            "streams_version": STREAMS_VERSION}


def same_run(a: DictConfig | Mapping[str, Any], b: DictConfig | Mapping[str, Any],
             trusted: Callable[[str], bool] | None = None) -> bool:
    """Whether two configs describe the same run."""
    return effective_config(a, trusted) == effective_config(b, trusted)
