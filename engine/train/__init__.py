"""AGORA generator training (torch; a development dependency, never imported by the add-on).

``dataset`` (on-disk format, validation, writer), ``synthetic``, ``tracker`` and ``nerf_export`` (builders),
``data`` (DistributedSampler batches), ``model`` (maps → Gaussians on the articulated mesh),
``splat_torch`` (differentiable rasterizer; gsplat on CUDA), ``discriminator`` (dual
discrimination), ``losses``, ``loop`` (Trainer), ``board`` (TensorBoard), ``state`` (resume), ``ddp`` (torchrun),
``cli`` / ``cli_dataset`` (``python -m engine train`` / ``dataset``), ``metrics`` and ``bench``.
See docs/TRAINING.md.
"""
