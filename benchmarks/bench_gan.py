"""GAN iteration benchmark: where the time of one training iteration goes, naive vs ours.

One iteration = generator → render (forward + backward) → noise → discriminator step →
generator step, tio2-sem at 256², 40 meshes, spp 16. *Naive* renders with Mitsuba's
``direct`` integrator each iteration; *ours* re-shades cached geometry (deferred shading) and
traces a new constellation every ``reuse`` iterations. Also prints the image error of both
renderers against a spp-1024 reference (equal quality check) and the FID cost.

Run: ``.venv/bin/python benchmarks/bench_gan.py [--iterations 12]``
"""

from __future__ import annotations

import argparse
import time

import drjit as dr
import numpy as np
import torch

from napari_diffrendergan.config import preset
from napari_diffrendergan.gan.networks import ParameterSpace, build_discriminator, build_generator
from napari_diffrendergan.render.placement import transformation_tensor
from napari_diffrendergan.render.sampling import mid_range_values
from napari_diffrendergan.render.scene import VirtualScene
from napari_diffrendergan.render.shading import shade_torch, trace


def discriminator_steps(discriminator, opt_d, fake, real):
    out = discriminator(torch.cat([real, fake.detach()]))
    loss = 0.5 * ((out[0] - 1) ** 2).mean() + 0.5 * (out[1] ** 2).mean()
    opt_d.zero_grad()
    loss.backward()
    opt_d.step()
    discriminator.requires_grad_(False)
    ((discriminator(fake) - 1) ** 2).mean().backward(retain_graph=True)
    discriminator.requires_grad_(True)


def naive_render(scene, names, values, seed):
    """Mitsuba's direct integrator with gradients to the BSDF values (torch bridge)."""
    tracked = {}
    for name, value in zip(names, values.detach().tolist(), strict=True):
        tracked[name] = scene.mi.Float(value)
        dr.enable_grad(tracked[name])
        scene.params[scene.bsdf_key(name)] = tracked[name]
    scene.params.update()
    image = scene.mi.render(scene.scene, scene.params, seed=seed)[:, :, 0]
    out = torch.from_numpy(image.numpy()).requires_grad_()
    return out, image, tracked


def run(mode, scene, phis, space, args, reuse=1):
    torch.manual_seed(0)
    generator = build_generator(scene.n, len(space.names), 0.5)
    discriminator = build_discriminator()
    opt_g = torch.optim.Adam(generator.parameters(), 2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(discriminator.parameters(), 1e-4, betas=(0.5, 0.999))
    real = torch.rand(1, 1, 256, 256)
    phi_in = torch.from_numpy(phis.reshape(len(phis), -1) / 4)
    names = space.names[:-1]
    traced = 0.0
    cache = None
    times = []
    for it in range(args.iterations + 1):  # first: warm-up (kernel compilation)
        start = time.perf_counter()
        opt_g.zero_grad()
        values = space.scale(generator(phi_in[it % len(phis)][None])[0])
        t0 = time.perf_counter()
        if mode == "naive":
            scene.place(phis[it % len(phis)])
            trace_s = time.perf_counter() - t0
            image, dr_image, tracked = naive_render(scene, names, values[:-1], it)
        else:
            if cache is None or it % reuse == 0:
                scene.place(phis[it % len(phis)])
                cache = trace(scene, seed=it)
            trace_s = time.perf_counter() - t0
            image = shade_torch(cache, names, values[:-1])
        fake = (image + values[-1] * torch.randn_like(image))[None, None]
        discriminator_steps(discriminator, opt_d, fake, real)
        if mode == "naive":  # carry the image gradient through Mitsuba to the parameters
            dr.backward(dr.sum(dr_image * scene.mi.TensorXf(image.grad.numpy())))
            grads = torch.tensor([dr.grad(tracked[n])[0] for n in names])
            values[:-1].backward(grads)
        opt_g.step()
        end = time.perf_counter()
        if it:
            times.append(end - start)
            traced += trace_s
    return float(np.mean(times)), traced / args.iterations


def quality(scene, values):
    scene.set_bsdf(values)
    reference = scene.render(seed=100, spp=1024)
    naive = [scene.render(seed=s) for s in range(3)]
    ours = [trace(scene, seed=s).render() for s in range(3)]
    rmse = [np.mean([np.sqrt(np.mean((a - reference) ** 2)) for a in x]) for x in (naive, ours)]
    return rmse


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=12)
    args = parser.parse_args()
    config = preset("tio2-sem")
    scene = VirtualScene(config, device="cpu")
    space = ParameterSpace.from_config(config)
    phis = transformation_tensor(config, 16, 0)
    values, _ = mid_range_values(config)
    scene.set_bsdf(values)
    print(
        f"tio2-sem 256², {config.meshes.count} meshes, spp {config.scene.spp}, "
        f"{torch.get_num_threads()} torch threads, {scene.backend.describe()}"
    )
    baseline, _ = run("naive", scene, phis, space, args)
    print(f"naive (Mitsuba direct fwd+bwd every iteration): {baseline:.3f} s/iteration")
    for reuse in (1, 4, 8):
        seconds, traced = run("ours", scene, phis, space, args, reuse)
        print(
            f"deferred shading, reuse {reuse}: {seconds:.3f} s/iteration "
            f"({baseline / seconds:.1f}× faster; tracing {traced:.3f} s of it)"
        )
    scene.place(phis[0])
    start = time.perf_counter()
    cache = trace(scene, seed=1)
    print(
        f"trace one constellation: {time.perf_counter() - start:.3f} s, "
        f"{cache.nbytes / 2**20:.0f} MiB cached"
    )
    naive, ours = quality(scene, values)
    print(
        f"image RMSE vs spp-1024 reference: naive {naive:.4f}, ours {ours:.4f} "
        f"(ratio {ours / naive:.2f})"
    )
    from napari_diffrendergan.gan.fid import InceptionFeatures, frechet_distance, statistics

    images = np.random.default_rng(0).random((32, 256, 256)).astype(np.float32)
    features = InceptionFeatures("cpu")
    start = time.perf_counter()
    stats = statistics(features(images))
    per_image = (time.perf_counter() - start) / len(images)
    start = time.perf_counter()
    frechet_distance(*stats, *stats)
    print(
        f"FID: {per_image:.3f} s/image features, {time.perf_counter() - start:.2f} s distance; "
        f"124-image epoch ≈ {124 * per_image + time.perf_counter() - start:.0f} s"
    )


if __name__ == "__main__":
    main()
