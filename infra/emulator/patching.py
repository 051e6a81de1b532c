"""How moto_gaps and iam_gaps patch moto: by name, on the class or module where moto looks the name up.

mypy refuses to assign to a method (and to a module's name that the module does not export), and rightly in
ordinary code; replacing them in the emulator's process is what these patches are. `replace` checks that the
patch point is still there, so that a moto upgrade that moves it fails at `install()` rather than patching
nothing; `add` gives a class a method moto looks for by name and the class lacks."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any


def replace(owner: object, name: str, replacement: object) -> None:
    """Put `replacement` where moto has `owner.<name>` (a method, a property, a module's function)."""
    if not hasattr(owner, name):
        raise AttributeError(f"moto has no {getattr(owner, '__name__', owner)}.{name} to patch: it moved")
    setattr(owner, name, replacement)


def add(owner: type, name: str, value: object) -> None:
    """Give a moto class a method it lacks (moto calls it by name when the class has it)."""
    setattr(owner, name, value)


def classmethod_function(cls: type, name: str) -> Callable[..., Any]:
    """The function behind the classmethod `cls.<name>` (on `cls` or a base): call it with the class first."""
    method = inspect.getattr_static(cls, name)
    if not isinstance(method, classmethod):
        raise TypeError(f"moto's {cls.__name__}.{name} is no longer a classmethod")
    function: Callable[..., Any] = method.__func__
    return function


def property_getter(cls: type, name: str) -> Callable[[Any], Any]:
    """The getter of the property `cls.<name>`."""
    attribute = inspect.getattr_static(cls, name)
    if not isinstance(attribute, property) or attribute.fget is None:
        raise TypeError(f"moto's {cls.__name__}.{name} is no longer a property")
    return attribute.fget
