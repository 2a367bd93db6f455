"""DiffRenderGAN: generator and discriminator, the run folder, training, FID and its plots."""
