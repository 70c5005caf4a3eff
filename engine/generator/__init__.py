"""AGORA networks (torch), checkpoints (safetensors + JSON) and ONNX export/inference.

Modules (torch is imported only by ``networks`` and ``onnx_export``, and lazily by ``checkpoint``
when the safetensors form is loaded, so ONNX checkpoints run with numpy + onnxruntime alone):

    config        GeneratorConfig (frozen dataclass, JSON) and the map channel layouts
    uvmap         UV rasteriser (texel -> face, barycentrics), shape-deformation UV maps, bilinear sampler
    decode        raw samples -> Gaussian attributes / residuals (numpy)
    networks      MappingNetwork, SynthesisNetwork (modulated convs, spatial shape conditioning),
                  DeformationBranch, Generator (torch)
    checkpoint    checkpoint folders/zips, validation, runners (torch or ONNX)
    onnx_export   identity.onnx + deformation.onnx (``python -m engine.generator.onnx_export``)
    onnx_runtime  OnnxRunner (onnxruntime only)
    source        CheckpointSource.sample(seed, shape, truncation) -> BoundIdentity with a NetworkDeformation
    bench         ``python -m engine bench generator``

No trained AGORA weights exist for this project yet: training needs multi-view video of many
subjects and GPUs, and the training loop (with AGORA's dual discriminator) is not written.
``tools/make_generator_checkpoint.py`` writes seeded random checkpoints (meta ``"trained": false``)
that exercise every code path; their "identities" are structured noise on the head mesh.
"""
