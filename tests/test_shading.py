import numpy as np
import pytest

from napari_diffrendergan.config import preset
from napari_diffrendergan.errors import InputError
from napari_diffrendergan.render.placement import transformation_tensor
from napari_diffrendergan.render.sampling import mid_range_values
from napari_diffrendergan.render.scene import VirtualScene
from napari_diffrendergan.render.shading import shade_torch, trace

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def scene():
    config = preset("tio2-sem")
    config.scene.width = config.scene.height = 64
    config.scene.field_width = 3.0
    config.meshes.count = 6
    scene = VirtualScene(config, device="cpu")
    scene.place(transformation_tensor(config, 1, 3)[0])
    scene.set_bsdf(mid_range_values(config)[0])
    return scene


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
