"""Options that travel together, as one value: a dataclass filled from the loose keyword arguments a public call
has always taken (`evaluate(..., device="cpu", encoding="cp1252")`), so those call forms keep working while the
code inside passes one typed value."""

from __future__ import annotations

from dataclasses import fields, replace
from typing import Any, TypeVar

T = TypeVar("T")


def gather(kind: type[T], keywords: dict[str, Any], name: str) -> T:
    """`keywords[name]` (a `kind`; absent or None: `kind()`), with those of `keywords` that name its fields
    (`device="cpu"`) put in; all of them taken out of `keywords`."""
    given = keywords.pop(name, None)
    loose = {f.name: keywords.pop(f.name) for f in fields(kind) if f.name in keywords}
    return replace(given if given is not None else kind(), **loose)


def no_more(keywords: dict[str, Any], where: str) -> None:
    """What Python says of a keyword argument that a function does not take, for those left in `keywords`."""
    if keywords:
        raise TypeError(f"{where}() got an unexpected keyword argument {next(iter(keywords))!r}")
