"""Names imported on first use, for command bodies whose modules cost seconds to import."""

from __future__ import annotations

import importlib
from typing import Any

_UNSET = object()


class LazyName:
    """`module.name`, imported when first called or looked into (`Name(...)`, `Name.attr`).

    A command module is imported whenever `cove` starts (its options make the help), so a
    name it needs only while running binds lazily: pandas and web3 are paid for by the
    command that uses them, not by `cove --help` or `cove datasets`.
    """

    __slots__ = ("_module", "_name", "_value")

    def __init__(self, module: str, name: str):
        self._module = module
        self._name = name
        self._value: Any = _UNSET

    def resolve(self) -> Any:
        if self._value is _UNSET:
            self._value = getattr(importlib.import_module(self._module), self._name)
        return self._value

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.resolve()(*args, **kwargs)

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self.resolve(), attribute)

    def __repr__(self) -> str:
        return f"<lazy {self._module}.{self._name}>"
