"""Which avatar an operator acts on (one check shared by every operator's ``poll``), and the
selection an operator leaves behind."""

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


def select_only(context, objects) -> None:
    """Select exactly ``objects`` (a non-empty sequence) and make the last one active, as Blender's
    own add and import operators leave the selection."""
    for other in context.selected_objects:
        other.select_set(False)
    for obj in objects:
        obj.select_set(True)
    context.view_layer.objects.active = objects[-1]
