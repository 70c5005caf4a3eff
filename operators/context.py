"""Which avatar an operator acts on (one check shared by every operator's ``poll``), and the
selection an operator leaves behind."""

from __future__ import annotations

from . import storage


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


def poll_avatar_with_identity(cls, context):
    """``poll_active_avatar``, also refusing an avatar that holds no stored Gaussians."""
    obj = poll_active_avatar(cls, context)
    if obj is None:
        return None
    if not storage.has_identity(obj):
        cls.poll_message_set(f"'{obj.name}' holds no stored Gaussians")
        return None
    return obj


def poll_object_mode(cls, context) -> bool:
    """True in Object Mode with a scene (what adding objects needs), else False after explaining
    the refusal with ``cls.poll_message_set``."""
    if context.mode != 'OBJECT':
        cls.poll_message_set("Switch to Object Mode first")
        return False
    if context.scene is None:
        cls.poll_message_set("No active scene")
        return False
    return True


def select_only(context, objects) -> None:
    """Select exactly ``objects`` (a non-empty sequence) and make the last one active, as Blender's
    own add and import operators leave the selection."""
    for other in context.selected_objects:
        other.select_set(False)
    for obj in objects:
        obj.select_set(True)
    context.view_layer.objects.active = objects[-1]
