"""The member registry: ``@MEMBERS.register("name")`` on a member class makes it trainable by name."""

from ensemble.registry import Registry

MEMBERS: Registry = Registry("member")
