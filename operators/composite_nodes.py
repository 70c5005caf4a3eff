"""The compositor nodes of the Cycles/EEVEE composite, on every Blender we serve.

The main scene's own Render Layers node keeps feeding whatever it fed (a Composite node, a Group
Output, the user's glare or colour nodes), but through our Z Combine, which puts the companion
scene's Gaussian Heads layer in front of or behind it by depth:

    companion Render Layers ─Image─► Alpha Convert (to straight) ─► Z Combine A
                           ─Depth─────────────────────────────────► Z Combine Depth A
    main Render Layers ─────Image─────────────────────────────────► Z Combine B
                       ─────Depth─────────────────────────────────► Z Combine Depth B
    Z Combine Result / Depth ─► where main Image / Depth went before

API differences, each handled in one function below:
* 4.2–4.5: ``scene.use_nodes`` and ``scene.node_tree`` (an embedded tree that cannot be deleted:
  removal turns ``use_nodes`` back off and leaves Blender's two default nodes), a Composite node;
  Z Combine's options are properties on 4.2 and input sockets from 4.5 on; Alpha Convert has a
  ``mapping`` property.
* 5.0+: ``scene.compositing_node_group`` (a node group ID, deleted again if set-up made it) with a
  Group Output; sockets are named A, Depth A, B, Depth B, Use Alpha; Alpha Convert has a Type menu.
"""

from __future__ import annotations

import bpy

from ..engine.composite import CompositeRecord, Rewired

NODE_GROUP_API = "compositing_node_group" in bpy.types.Scene.bl_rna.properties
GROUP_NAME = "Gaussian Heads Composite"
Z_INPUTS = (0, 1, 2, 3)   # A (image), Depth A, B (image), Depth B: the same indices on every version


def compositor_tree(scene):
    """The scene's compositor node tree, or None when it has none in use."""
    if NODE_GROUP_API:
        return scene.compositing_node_group
    return scene.node_tree if scene.use_nodes else None


def ensure_tree(scene) -> tuple[object, bool]:
    """(the compositor tree, whether it was made now) with compositing on."""
    if NODE_GROUP_API:
        tree = scene.compositing_node_group
        if tree is not None:
            return tree, False
        tree = bpy.data.node_groups.new(GROUP_NAME, "CompositorNodeTree")
        tree.interface.new_socket("Image", in_out='OUTPUT', socket_type='NodeSocketColor')
        scene.compositing_node_group = tree
        return tree, True
    created = scene.node_tree is None
    scene.use_nodes = True     # makes Blender's default tree (Render Layers -> Composite) if none
    return scene.node_tree, created


def _output_node(tree):
    """The node whose Image input is the composite's result (made if missing)."""
    kind = "NodeGroupOutput" if NODE_GROUP_API else "CompositorNodeComposite"
    for node in tree.nodes:
        if node.bl_idname == kind and getattr(node, "is_active_output", True):
            return node
    node = tree.nodes.new(kind)
    node.location = (600, 0)
    return node


def find_render_layers(tree, scene, view_layer_name: str):
    """The Render Layers node showing ``scene``'s ``view_layer_name`` (linked ones first)."""
    candidates = [n for n in tree.nodes if n.bl_idname == "CompositorNodeRLayers"
                  and n.scene in (None, scene) and n.layer == view_layer_name]
    candidates.sort(key=lambda n: not any(o.is_linked for o in n.outputs))
    return candidates[0] if candidates else None


def _set_option(node, socket: str, prop: str, value) -> None:
    """A node option that is an input socket on newer Blenders and a property on older ones."""
    if socket in node.inputs:
        node.inputs[socket].default_value = value
    else:
        setattr(node, prop, value)


def _to_straight(node) -> None:
    if "Type" in node.inputs:        # 5.0+
        node.inputs["Type"].default_value = "To Straight"
    else:
        node.mapping = 'PREMUL_TO_STRAIGHT'


def build(scene, view_layer_name: str, companion) -> CompositeRecord:
    """Add the composite's nodes to ``scene``'s compositor (made if missing); returns what it
    changed, hidden objects left empty (the caller adds them)."""
    use_nodes = bool(getattr(scene, "use_nodes", False)) if not NODE_GROUP_API else False
    use_compositing = scene.render.use_compositing
    tree, created = ensure_tree(scene)
    scene.render.use_compositing = True
    main_layers = find_render_layers(tree, scene, view_layer_name)
    added_layers = main_layers is None
    if added_layers:
        main_layers = tree.nodes.new("CompositorNodeRLayers")
        main_layers.location = (-400, 200)
    main_layers.scene = scene
    main_layers.layer = view_layer_name
    output = _output_node(tree)

    ours = tree.nodes.new("CompositorNodeRLayers")
    ours.name = ours.label = "Gaussian Heads Layer"
    ours.scene = companion
    ours.layer = companion.view_layers[0].name
    ours.location = (main_layers.location.x, main_layers.location.y - 450)
    convert = tree.nodes.new("CompositorNodePremulKey")
    convert.name = convert.label = "Gaussian Heads Straight Alpha"
    _to_straight(convert)
    convert.location = (ours.location.x + 250, ours.location.y)
    zcombine = tree.nodes.new("CompositorNodeZcombine")
    zcombine.name = zcombine.label = "Gaussian Heads Z Combine"
    _set_option(zcombine, "Use Alpha", "use_alpha", True)
    # Blender's anti-aliasing smooths the binary near/far mask over several pixels, which drew a
    # dark halo where our faint edges (alpha ~0.02, depth still defined) lie over a far layer;
    # our edges are already anti-aliased by their alpha.
    _set_option(zcombine, "Anti-Alias", "use_antialias_z", False)
    zcombine.location = (convert.location.x + 200, main_layers.location.y - 150)

    # everything that left the main layer's Image and Depth now leaves the Z Combine
    rewired = []
    for link in list(tree.links):
        if link.from_node == main_layers and link.from_socket.name in ("Image", "Depth"):
            to_node, index = link.to_node, list(link.to_node.inputs).index(link.to_socket)
            rewired.append(Rewired(to_node.name, index, link.from_socket.name))
            tree.links.remove(link)
    if not any(r.output == "Image" for r in rewired):   # a new tree: the layer feeds the output
        rewired.append(Rewired(output.name, 0, "Image"))
    links = tree.links
    links.new(ours.outputs["Image"], convert.inputs[0])
    links.new(convert.outputs[0], zcombine.inputs[Z_INPUTS[0]])
    links.new(ours.outputs["Depth"], zcombine.inputs[Z_INPUTS[1]])
    links.new(main_layers.outputs["Image"], zcombine.inputs[Z_INPUTS[2]])
    links.new(main_layers.outputs["Depth"], zcombine.inputs[Z_INPUTS[3]])
    for r in rewired:
        links.new(zcombine.outputs[0 if r.output == "Image" else 1], tree.nodes[r.node].inputs[r.socket])
    return CompositeRecord(
        view_layer=view_layer_name, use_pass_z=False, created_tree=created, use_nodes=use_nodes,
        use_compositing=use_compositing, render_layers=main_layers.name,
        added_render_layers=added_layers, nodes=(ours.name, convert.name, zcombine.name),
        rewired=tuple(rewired), hidden=())


def unbuild(scene, record: CompositeRecord) -> None:
    """Remove what :func:`build` added and put the links it moved back (nodes the user deleted
    meanwhile are skipped)."""
    scene.render.use_compositing = record.use_compositing
    tree = scene.compositing_node_group if NODE_GROUP_API else scene.node_tree
    if tree is None:
        return
    if NODE_GROUP_API and record.created_tree:
        scene.compositing_node_group = None
        if tree.users == 0:
            bpy.data.node_groups.remove(tree)
        return
    main_layers = tree.nodes.get(record.render_layers)
    for name in record.nodes:
        node = tree.nodes.get(name)
        if node is not None:
            tree.nodes.remove(node)
    if main_layers is not None:
        for r in record.rewired:
            target = tree.nodes.get(r.node)
            if target is not None and r.socket < len(target.inputs) and r.output in main_layers.outputs:
                tree.links.new(main_layers.outputs[r.output], target.inputs[r.socket])
        if record.added_render_layers and not record.created_tree:
            tree.nodes.remove(main_layers)
    if not NODE_GROUP_API:
        scene.use_nodes = record.use_nodes
