"""Scene benchmark: forward, forward+backward, labels, re-placement, peak RSS per integrator.

256×256, preset tio2-sem (40 deformed cubes), spp 4/16/64. Also compares the BSDF gradients of
each integrator with those of ``direct_projective`` (the reference: it also handles visibility
discontinuities, which BSDF parameters do not need).

Run: ``.venv/bin/python benchmarks/bench_scene.py [--spp 4 16 64] [--repeats 3]``
"""

from __future__ import annotations

import argparse
import resource
import time

import drjit as dr
import numpy as np

from napari_diffrendergan.config import preset
from napari_diffrendergan.render.placement import transformation_tensor
from napari_diffrendergan.render.sampling import mid_range_values
from napari_diffrendergan.render.scene import VirtualScene

# Mitsuba's integrators compared here (the project renders with its own estimator of "direct")
INTEGRATORS = ("direct", "prb", "direct_projective")


def timed(fn, repeats):
    fn()  # warm-up: kernel compilation
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def gradients(scene, integrator, names, seed, spp):
    params = scene.params
    keys = [scene.bsdf_key(n) for n in names]
    for key in keys:
        dr.enable_grad(params[key])
    params.update()
    image = scene.mi.render(scene.scene, params, integrator=integrator, seed=seed, spp=spp)
    dr.backward(dr.mean(image, axis=None))
    grads = np.array([float(dr.grad(params[k])[0]) for k in keys])
    for key in keys:
        dr.disable_grad(params[key])
    return grads


def measure(config, name, phis, values, args):
    """Timings for Mitsuba's integrator ``name``, and its mean gradient over 4 seeds at spp 64."""
    names = list(values)
    start = time.perf_counter()
    scene = VirtualScene(config, device=args.device)
    build = time.perf_counter() - start
    integrator = scene.mi.load_dict({"type": name})
    scene.place(phis[0])
    scene.set_bsdf(values)
    counter = iter(range(10**6))
    replace = timed(lambda: scene.place(phis[1 + next(counter) % 7]), args.repeats)
    scene.place(phis[0])
    labels = timed(scene.instances, args.repeats)
    rows = []
    for spp in args.spp:
        forward = timed(
            lambda spp=spp: np.asarray(
                scene.mi.render(scene.scene, scene.params, integrator=integrator, seed=1, spp=spp)
            ),
            args.repeats,
        )
        backward = timed(lambda spp=spp: gradients(scene, integrator, names, 1, spp), args.repeats)
        rows.append((name, spp, forward, backward, labels, replace, build))
    grads = [gradients(scene, integrator, names, seed, 64) for seed in range(4)]
    mean_grad = np.mean(grads, axis=0)
    return rows, mean_grad


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spp", type=int, nargs="+", default=[4, 16, 64])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--integrators", nargs="+", default=list(INTEGRATORS))
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    config = preset("tio2-sem")
    phis = transformation_tensor(config, 8, seed=0)
    values, _ = mid_range_values(config)
    names = list(values)
    rows, grads = [], {}
    for integrator in args.integrators:
        found_rows, grads[integrator] = measure(config, integrator, phis, values, args)
        rows += found_rows
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    print(
        f"tio2-sem, {config.scene.width}x{config.scene.height}, {config.meshes.count} meshes, "
        f"device {args.device}, median of {args.repeats}"
    )
    print(
        f"{'integrator':18s} {'spp':>4s} {'forward s':>10s} {'fwd+bwd s':>10s} "
        f"{'labels s':>9s} {'re-place s':>10s} {'build s':>8s}"
    )
    for integrator, spp, forward, backward, labels, replace, build in rows:
        print(
            f"{integrator:18s} {spp:>4d} {forward:>10.3f} {backward:>10.3f} {labels:>9.3f} "
            f"{replace:>10.4f} {build:>8.2f}"
        )
    print(f"peak RSS (whole run): {peak_mib:.0f} MiB")
    if "direct_projective" in grads:
        reference = grads["direct_projective"]
        print("\nBSDF gradients of mean(image), spp 64, 4 seeds averaged:")
        print(f"{'parameter':22s}" + "".join(f"{i:>18s}" for i in grads))
        for k, name in enumerate(names):
            print(f"{name:22s}" + "".join(f"{g[k]:>18.5g}" for g in grads.values()))
        for integrator, g in grads.items():
            cosine = g @ reference / (np.linalg.norm(g) * np.linalg.norm(reference))
            rel = np.linalg.norm(g - reference) / np.linalg.norm(reference)
            print(
                f"{integrator:18s} vs direct_projective: cosine {cosine:.4f}, "
                f"relative difference {rel:.3f}"
            )


if __name__ == "__main__":
    main()
