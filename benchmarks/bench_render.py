"""Render quality and speed of every renderer setting on the tio2-sem scene (256², CPU).

Rows marked "denoised" trace fewer samples (``render.denoise.traced_spp``) and filter them
guided by the geometry; their spp is the quality asked for. Quality is measured on one
constellation, against a Mitsuba ``direct`` reference at spp 1024:
*grain* = the high-frequency standard deviation inside particles (the image minus its Gaussian
blur of σ 2 px, before any added noise; the real TiO2 SEM scans: 0.039 with their detector
noise included) and *mean error* = the mean absolute difference to the reference. "spp-121
quality" is what Mitsuba ``direct`` reaches at spp 121. For every setting the time per image
(placement, trace, shading and film filter; kernels compiled before timing) is printed beside
the ratio to Mitsuba at spp 121, measured in the same run.

Run: ``.venv/bin/python benchmarks/bench_render.py [--preset tio2-sem] [--repeats 3]``
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy import ndimage

from napari_diffrendergan.config import preset
from napari_diffrendergan.render.denoise import traced_spp
from napari_diffrendergan.render.placement import constellation
from napari_diffrendergan.render.sampling import mid_range_values
from napari_diffrendergan.render.scene import VirtualScene
from napari_diffrendergan.render.shading import trace

SETTINGS = [  # (renderer, sampler, spp asked for, denoise)
    ("mitsuba", "stratified", 121, False),
    ("ours", "stratified", 16, False),
    ("ours", "stratified", 36, False),
    ("ours", "stratified", 64, False),
    ("ours", "stratified", 121, False),
    ("ours", "ldsampler", 36, False),
    ("ours", "multijitter", 36, False),
    ("ours", "stratified", 64, True),
    ("ours", "stratified", 121, True),
    ("ours", "stratified", 256, True),
]


def render(scene, renderer: str, spp: int, seed: int) -> np.ndarray:
    if renderer == "mitsuba":
        return scene.render(seed=seed, spp=spp)
    return trace(scene, seed=seed, spp=spp).render()


def grain(image: np.ndarray, particles: np.ndarray) -> float:
    inner = ndimage.binary_erosion(particles, iterations=3)
    return float((image - ndimage.gaussian_filter(image, 2))[inner].std())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tio2-sem")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    config = preset(args.preset)
    config.meshes.library = "pebbles"
    config.learning.stage_fixed = {"roughness": 0.5, "specular": 0.0}
    phi = constellation(config, np.random.default_rng(4))
    values, _ = mid_range_values(config)
    values["particle.base_color"] = 0.9  # a typical learned look, not saturated

    def scene_for(sampler: str, denoise: bool = False) -> VirtualScene:
        config.scene.sampler = sampler
        config.scene.denoise = denoise
        scene = VirtualScene(config, device="cpu")
        scene.set_bsdf(values)
        scene.place(phi)
        return scene

    reference_scene = scene_for("stratified")
    reference = reference_scene.render(seed=99, spp=1024)
    particles = reference_scene.instances() > 0
    print(f"{args.preset} 256², {config.meshes.count} meshes; reference: Mitsuba direct spp 1024")
    rows = []
    for renderer, sampler, spp, denoise in SETTINGS:
        scene = scene_for(sampler, denoise)
        render(scene, renderer, spp, 0)  # compile
        times, images = [], []
        for seed in range(1, args.repeats + 1):
            started = time.perf_counter()
            scene.place(phi)
            images.append(render(scene, renderer, spp, seed))
            times.append(time.perf_counter() - started)
        error = float(np.mean([np.abs(i - reference).mean() for i in images]))
        rows.append(
            (
                renderer + (f" denoised ({traced_spp(spp, True)} traced)" if denoise else ""),
                sampler,
                spp,
                np.median(times),
                np.mean([grain(i, particles) for i in images]),
                error,
            )
        )
    base = next(r for r in rows if r[0] == "mitsuba")
    print(
        f"{'renderer':28s} {'sampler':12s} {'spp':>4s} {'s/image':>8s} {'× Mitsuba':>9s} "
        f"{'grain':>7s} {'mean err':>9s}"
    )
    for renderer, sampler, spp, seconds, g, e in rows:
        print(
            f"{renderer:28s} {sampler:12s} {spp:4d} {seconds:8.2f} {seconds / base[3]:9.2f} "
            f"{g:7.4f} {e:9.5f}"
        )
    print(f"spp-121 quality: grain ≤ {base[4]:.4f}, mean error ≤ {base[5]:.5f}")
    denoiser = trace(scene_for("stratified", True), seed=1, spp=121).denoiser
    print(
        f"denoiser bias (filtered reference vs reference): mean error "
        f"{np.abs(denoiser(reference) - reference).mean():.5f}; reference grain "
        f"{grain(reference, particles):.4f}"
    )


if __name__ == "__main__":
    main()
