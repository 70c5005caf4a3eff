"""Which avatar an operator acts on: one check shared by every operator's ``poll``."""

from __future__ import annotations


def poll_active_avatar(cls, context):
    """The active object if it is a Gaussian head avatar, else None after explaining the refusal
    with ``cls.poll_message_set`` (call it from a ``poll`` classmethod)."""
    obj = context.active_object
    if obj is None:
        cls.poll_message_set("Select a Gaussian head avatar (none is active)")
        return None
    if not obj.gaussian_heads.is_avatar:
        cls.poll_message_set(f"'{obj.name}' is not a Gaussian head avatar")
        return None
    return obj
