"""DiffRenderGAN for napari: annotated synthetic nanoparticle images from differentiable rendering.

The core (config, meshes, placement, scene, rendering, ...) never imports napari or Qt;
widgets live in :mod:`napari_diffrendergan.widgets`.
"""

__version__ = "0.1.0"
