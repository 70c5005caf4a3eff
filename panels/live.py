"""The "Live" panel of the Gaussian Heads sidebar tab: protocol, address, port, avatar,
Start/Stop, Record, Set Neutral, smoothing and gain, and the address to type into the phone."""

import bpy

from .avatar import GaussianHeadsSidebar


class GAUSSIAN_HEADS_PT_live(GaussianHeadsSidebar, bpy.types.Panel):
    bl_label = "Live"
    bl_options = {'DEFAULT_CLOSED'}

    def draw(self, context):
        layout = self.layout
        settings = context.scene.gaussian_heads_live
        layout.use_property_split = True
        col = layout.column()
        col.enabled = not settings.running  # the socket's settings are fixed while it listens
        col.prop(settings, "protocol")
        col.prop(settings, "host")
        col.prop(settings, "port")
        col.prop_search(settings, "target", bpy.data, "objects")
        layout.prop(settings, "smoothing", slider=True)
        layout.prop(settings, "gain")
        row = layout.row(align=True)
        if settings.running:
            row.operator("gaussian_heads.live_stop", icon='PAUSE')
            if settings.recording:
                row.operator("gaussian_heads.live_record_stop", icon='SNAP_FACE')
            else:
                row.operator("gaussian_heads.live_record", icon='REC')
            layout.operator("gaussian_heads.live_set_neutral", icon='FACE_MAPS')
            box = layout.box()
            box.label(text=f"Send to: {settings.phone_address}", icon='URL')
            box.label(text=settings.status, icon='RADIOBUT_ON' if settings.recording else 'INFO')
        else:
            row.operator("gaussian_heads.live_start", icon='PLAY')
            if settings.status:
                layout.label(text=settings.status, icon='INFO')


classes = (GAUSSIAN_HEADS_PT_live,)
register, unregister = bpy.utils.register_classes_factory(classes)
