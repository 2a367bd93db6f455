import numpy as np
import pytest
from scipy import ndimage

from napari_diffrendergan.config import preset
from napari_diffrendergan.errors import InputError
from napari_diffrendergan.render.denoise import RADIUS, GuidedFilter, traced_spp
from napari_diffrendergan.render.placement import transformation_tensor
from napari_diffrendergan.render.sampling import mid_range_values
from napari_diffrendergan.render.scene import VirtualScene
from napari_diffrendergan.render.shading import find_shading_basis, shade_torch, trace

pytestmark = pytest.mark.slow


def small_scene(denoise: bool, size: int = 64, field_width: float = 3.0, meshes: int = 6):
    config = preset("tio2-sem")
    config.scene.width = config.scene.height = size
    config.scene.field_width = field_width
    config.scene.spp = 16
    config.scene.denoise = denoise
    config.meshes.count = meshes
    scene = VirtualScene(config, device="cpu")
    scene.place(transformation_tensor(config, 1, 3)[0])
    scene.set_bsdf(mid_range_values(config)[0])
    return scene


@pytest.fixture(scope="module")
def scene():
    return small_scene(denoise=False)


@pytest.fixture(scope="module")
def denoised_scene():
    """At the tio2-sem preset's pixel scale (32 px per mesh unit), where the denoiser applies."""
    return small_scene(denoise=True, size=128, field_width=4.0, meshes=8)


def test_one_sample_per_stratum_cell(scene):
    cache = trace(scene, seed=1, spp=16)
    cells = np.concatenate([np.asarray(s.cell) for s in cache.samples.values()])
    assert len(np.unique(cells)) == len(cells)
    assert cells.max() < cache.cells == 64 * 64 * 16
    with pytest.raises(InputError, match="square"):
        trace(scene, spp=8)


@pytest.mark.parametrize(
    "values", [{}, {"particle.roughness": 0.1, "particle.base_color": 4.0, "stage.base_color": 0.3}]
)
def test_shaded_image_matches_mitsuba_direct_render(scene, values):
    scene.set_bsdf({**mid_range_values(scene.config)[0], **values})
    reference = np.mean([scene.render(seed=s, spp=256) for s in range(2)], axis=0)
    naive = scene.render(seed=5, spp=16)
    shaded = np.mean([trace(scene, seed=s).render() for s in (11, 12)], axis=0)
    single = trace(scene, seed=13).render()
    assert shaded.mean() == pytest.approx(reference.mean(), rel=0.03)
    error = np.sqrt(np.mean((single - reference) ** 2))
    assert error < 1.2 * np.sqrt(np.mean((naive - reference) ** 2))  # equal image quality


def test_gradients_match_mitsuba_and_finite_differences(scene):
    import drjit as dr
    import torch

    names = ["particle.base_color", "stage.base_color", "particle.roughness"]
    base = mid_range_values(scene.config)[0]
    scene.set_bsdf(base)
    cache = trace(scene, seed=3, spp=64)
    values = torch.tensor([base[n] for n in names], requires_grad=True)
    shade_torch(cache, names, values).mean().backward()
    ours = values.grad.numpy()

    # finite differences of the (deterministic) cached estimator
    for i, name in enumerate(names):
        h = 1e-2 * base[name]
        scene.set_bsdf({name: base[name] + h})
        plus = cache.render().mean()
        scene.set_bsdf({name: base[name] - h})
        minus = cache.render().mean()
        scene.set_bsdf(base)
        assert ours[i] == pytest.approx((plus - minus) / (2 * h), rel=0.02, abs=1e-5)

    # Mitsuba's own AD through its direct integrator (independent samples: looser)
    keys = [scene.bsdf_key(n) for n in names[:2]]
    for key in keys:
        dr.enable_grad(scene.params[key])
    scene.params.update()
    image = scene.mi.render(scene.scene, scene.params, seed=9, spp=256)
    dr.backward(dr.mean(image, axis=None))
    mitsuba = [float(dr.grad(scene.params[k])[0]) for k in keys]
    scene.set_bsdf(base)
    assert ours[:2] == pytest.approx(mitsuba, rel=0.1)


def test_traced_samples_for_a_quality():
    assert [traced_spp(n, True) for n in (1, 16, 64, 121, 256, 1024)] == [1, 4, 16, 25, 64, 1024]
    assert traced_spp(121, False) == 121


def test_guided_filter_is_linear_keeps_depth_edges_and_matches_torch():
    import torch

    rng = np.random.default_rng(0)
    depth = np.zeros((24, 24), np.float32)
    depth[:, 12:] = 30.0  # a step of 30 pixel footprints: another surface
    normals = np.zeros((3, 24, 24), np.float32)
    normals[2] = 1
    denoiser = GuidedFilter.from_guides(normals, depth, pixel_size=1.0)
    assert np.allclose(denoiser.weights.sum(0), 1)
    a, b = rng.random((2, 24, 24)).astype(np.float32)
    assert np.allclose(denoiser(a + 2 * b), denoiser(a) + 2 * denoiser(b), atol=1e-5)
    assert np.allclose(denoiser(np.full((24, 24), 0.3, np.float32)), 0.3)
    changed = a.copy()
    changed[:, 12:] += 5.0  # the far surface's pixels must not leak into the near one
    assert np.allclose(denoiser(changed)[:, :12], denoiser(a)[:, :12], atol=1e-6)
    assert denoiser(a)[:, 12 - RADIUS : 12].std() < a[:, 12 - RADIUS : 12].std() / 2

    image = torch.from_numpy(a).requires_grad_()
    filtered = denoiser(image)
    assert np.allclose(filtered.detach().numpy(), denoiser(a), atol=1e-6)
    filtered.sum().backward()  # linear: d(sum)/d(pixel) = sum of the weights it receives
    received = np.zeros((24 + 2 * RADIUS,) * 2, np.float32)
    for k, (dy, dx) in enumerate(
        (dy, dx) for dy in range(-RADIUS, RADIUS + 1) for dx in range(-RADIUS, RADIUS + 1)
    ):
        received[RADIUS + dy : RADIUS + dy + 24, RADIUS + dx : RADIUS + dx + 24] += (
            denoiser.weights[k]
        )
    inner = received[2 * RADIUS : 24, 2 * RADIUS : 24]  # away from the replicated border
    assert np.allclose(image.grad.numpy()[RADIUS : 24 - RADIUS, RADIUS : 24 - RADIUS], inner)


def test_guided_filter_weights_match_their_definition_at_every_offset_and_border():
    from napari_diffrendergan.render import denoise

    rng = np.random.default_rng(1)
    normals = rng.normal(0, 0.2, (3, 19, 23)).astype(np.float32)
    depth = rng.normal(0, 2, (19, 23)).astype(np.float32)
    guides = np.concatenate(
        [normals / denoise.NORMAL_SIGMA, depth[None] / (denoise.DEPTH_SIGMA * 0.5)]
    )
    padded = np.pad(guides, ((0, 0), (RADIUS, RADIUS), (RADIUS, RADIUS)), mode="edge")
    expected = []
    for dy in range(-RADIUS, RADIUS + 1):  # w(p, p + o) straight from the module's doc
        for dx in range(-RADIUS, RADIUS + 1):
            near = padded[:, RADIUS + dy : RADIUS + dy + 19, RADIUS + dx : RADIUS + dx + 23]
            distance = ((near - guides) ** 2).sum(0) + (dy**2 + dx**2) / denoise.SPATIAL_SIGMA**2
            expected.append(np.exp(-0.5 * distance))
    expected = np.array(expected) / np.sum(expected, axis=0)
    weights = GuidedFilter.from_guides(normals, depth, pixel_size=0.5).weights
    assert np.allclose(weights, expected, rtol=1e-5, atol=1e-30)


def test_pixel_means_of_stratum_cells():
    from napari_diffrendergan.render.shading import _pixel_means

    cells = np.random.default_rng(2).random(6 * 3 * 7 * 3).astype(np.float32)
    expected = cells.reshape(6, 3, 7, 3).mean((1, 3))
    assert np.allclose(_pixel_means(cells, 6, 7, 3), expected, rtol=1e-6)


def test_denoised_trace_reaches_the_quality_it_is_asked_for(denoised_scene, scene):
    raw = small_scene(denoise=False, size=128, field_width=4.0, meshes=8)
    reference = np.mean([raw.render(seed=s, spp=256) for s in range(3)], axis=0)
    mitsuba = raw.render(seed=7, spp=121)
    cache = trace(denoised_scene, seed=8, spp=121)
    assert cache.strata**2 == 25 and cache.denoiser is not None
    denoised = cache.render()
    raw_25 = trace(raw, seed=8, spp=25).render()

    def error(image):
        return float(np.abs(image - reference).mean())

    def grain(image):
        return float((image - ndimage.gaussian_filter(image, 2)).std())

    assert denoised.mean() == pytest.approx(reference.mean(), rel=0.02)
    assert error(denoised) < 1.05 * error(mitsuba) < error(raw_25) / 1.4
    assert grain(denoised) < grain(mitsuba)
    # too coarse for the filter (21 px per mesh unit): the full spp is traced instead
    assert trace(small_scene(denoise=True), seed=1, spp=121).denoiser is None


def test_basis_images_render_the_trace_exactly_also_denoised(scene, denoised_scene):
    rng = np.random.default_rng(2)
    for s in (scene, denoised_scene):
        learning = s.config.learning
        names = learning.learned()
        limits = {n: learning.limits_for(*n.split(".", 1)) for n in names}
        basis = find_shading_basis(s, names, limits)
        assert basis is not None
        cache = trace(s, seed=4, spp=64)
        images = cache.reduce(basis)
        for _ in range(2):
            values = [float(rng.uniform(*limits[n])) for n in names]
            s.set_bsdf(dict(zip(names, values, strict=True)))
            expected = cache.render()
            assert np.allclose(images.render(values), expected, atol=1e-4 * expected.max())
        s.set_bsdf(mid_range_values(s.config)[0])


def test_trace_lets_other_threads_run_while_its_kernels_do():
    """napari's GUI thread keeps running while a thread worker traces: the trace waits for its
    kernels without the GIL (it held it for ~70 % of the trace before)."""
    import threading
    import time

    scene = small_scene(denoise=True, size=256, field_width=8.0, meshes=12)
    trace(scene, seed=0, spp=121)  # kernel compilation
    finished = threading.Event()
    worker = threading.Thread(target=lambda: (trace(scene, seed=1, spp=121), finished.set()))
    started = last = time.perf_counter()
    longest = 0.0
    worker.start()
    while not finished.is_set():
        time.sleep(0.001)
        now = time.perf_counter()
        longest, last = max(longest, now - last), now
    worker.join()
    assert longest < 0.3 * (time.perf_counter() - started)


def test_probes_that_cannot_separate_the_monomials_are_refused():
    from napari_diffrendergan.render.shading import _monomials, _probes

    class Stuck:  # draws the same values again and again: a singular probe matrix
        def random(self, shape):
            return np.full(shape, 0.3)

    low, high = np.array([0.0, 0.0]), np.array([1.0, 1.0])
    kept = [(0, 0), (1, 0), (0, 1)]  # 1, x, y: evenly spaced probes lie on one line too
    assert _probes(Stuck(), low, high, kept) is None
    probes = _probes(np.random.default_rng(0), low, high, kept)
    assert np.linalg.cond(_monomials(probes, kept)) < 1e8
    assert _probes(Stuck(), low, high, [(0, 0), (1, 0)]) is not None  # evenly spaced: fine
