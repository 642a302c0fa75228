"""Turn a sampler's state into JSON + numpy arrays and back, with no pickle.

Checkpoints must load without unpickling arbitrary objects, yet every sampler keeps
different state. This walks an object's attributes and encodes them with explicit
type tags: numpy arrays go to a flat ``arrays`` dict (saved in an ``.npz`` with
``allow_pickle=False``), numpy Generators as their bit-generator state (plain JSON),
containers and scalars as JSON. Restoring writes the values back into an existing
object of the same class; nested objects are rebuilt only for fedsim's own classes.
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np

ALLOWED_PACKAGE = "fedsim."


def encode(value: Any, arrays: dict[str, np.ndarray], path: str = "s") -> Any:
    """Encode ``value`` as JSON-ready data, moving numpy arrays into ``arrays``."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        arrays[path] = value
        return {"t": "nd", "k": path}
    if isinstance(value, np.random.Generator):
        return {"t": "gen", "s": value.bit_generator.state}
    if isinstance(value, (list, tuple)):
        items = [encode(v, arrays, f"{path}.{i}") for i, v in enumerate(value)]
        return {"t": "tuple" if isinstance(value, tuple) else "list", "v": items}
    if isinstance(value, dict):
        return {
            "t": "dict",
            "v": [[encode(k, arrays, f"{path}.k{i}"), encode(v, arrays, f"{path}.{i}")] for i, (k, v) in enumerate(value.items())],
        }
    if hasattr(value, "__dict__"):
        cls = type(value)
        return {
            "t": "obj",
            "c": f"{cls.__module__}:{cls.__qualname__}",
            "d": {name: encode(v, arrays, f"{path}.{name}") for name, v in vars(value).items()},
        }
    raise TypeError(f"cannot checkpoint a {type(value).__name__} at {path}")


def decode(data: Any, arrays: dict[str, np.ndarray], current: Any = None) -> Any:
    """Inverse of :func:`encode`; objects are restored into ``current`` when given."""
    if not isinstance(data, dict):
        return data
    tag = data["t"]
    if tag == "nd":
        return np.array(arrays[data["k"]])
    if tag == "gen":
        generator = current if isinstance(current, np.random.Generator) else np.random.default_rng()
        generator.bit_generator.state = data["s"]
        return generator
    if tag in ("list", "tuple"):
        items = [decode(v, arrays) for v in data["v"]]
        return tuple(items) if tag == "tuple" else items
    if tag == "dict":
        return {decode(k, arrays): decode(v, arrays) for k, v in data["v"]}
    if tag == "obj":
        target = current if current is not None and _class_path(current) == data["c"] else _new_instance(data["c"])
        restore_into(target, data, arrays)
        return target
    raise ValueError(f"unknown state tag {tag!r}")


def capture(obj: Any) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The state of ``obj`` as (JSON-ready tree, arrays)."""
    arrays: dict[str, np.ndarray] = {}
    return encode(obj, arrays), arrays


def restore_into(obj: Any, tree: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    """Write a captured state back into ``obj`` (same class), attribute by attribute."""
    if _class_path(obj) != tree["c"]:
        raise ValueError(f"checkpoint holds a {tree['c']}, not a {_class_path(obj)}")
    current = vars(obj)
    for name, value in tree["d"].items():
        object.__setattr__(obj, name, decode(value, arrays, current.get(name)))


def _class_path(obj: Any) -> str:
    return f"{type(obj).__module__}:{type(obj).__qualname__}"


def _new_instance(path: str) -> Any:
    """An empty instance of one of fedsim's classes (nothing else is ever built)."""
    module_name, qualname = path.split(":")
    if not (module_name + ".").startswith(ALLOWED_PACKAGE):
        raise ValueError(f"refusing to rebuild {path} from a checkpoint: not a fedsim class")
    cls: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        cls = getattr(cls, part)
    if not isinstance(cls, type) or not (cls.__module__ + ".").startswith(ALLOWED_PACKAGE):
        raise ValueError(f"refusing to rebuild {path} from a checkpoint: not a class defined in fedsim")
    return cls.__new__(cls)
