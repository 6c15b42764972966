"""The member registry: ``@MEMBERS.register("name")`` on a ``Member`` subclass makes it trainable by name.

The built-in members are registered by ``load_members`` (their modules import torch and timm, so nothing
loads them before a command needs one).
"""

from __future__ import annotations

from importlib import import_module

from ensemble.registry import Registry
from members.base import Member
from members.configs import MemberConfig

MEMBERS: Registry = Registry("member")
BUILT_IN = ("members.cnn", "members.temporal", "members.committee", "members.keras")


def load_members() -> Registry:
    """The registry with the built-in members in it (and any registered elsewhere)."""
    for module in BUILT_IN:
        import_module(module)
    return MEMBERS


def member_class(name: str) -> type[Member]:
    """The member class registered as ``name``; an unknown name lists the known ones."""
    return load_members().get(name)


def registry_name(member_cls: type[Member]) -> str:
    """The name ``member_cls`` is registered under (what config.json stores)."""
    return next(n for n in load_members().names() if MEMBERS.get(n) is member_cls)


def create_member(name: str, config: MemberConfig | None = None) -> Member:
    """The member registered as ``name`` with ``config`` (default: its config's defaults)."""
    return member_class(name)(config)
