"""Member models: data loading, the member registry, training, prediction and feature caches.

Importing the package loads no network code: ``load_members()`` registers the built-in members.
"""

from members.base import Member
from members.configs import MemberConfig
from members.registry import MEMBERS, create_member, load_members

__all__ = ["MEMBERS", "Member", "MemberConfig", "create_member", "load_members"]
