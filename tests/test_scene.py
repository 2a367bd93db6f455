import drjit as dr
import numpy as np
import pytest
from scipy import ndimage

from napari_diffrendergan.config import preset
from napari_diffrendergan.render.labels import semantic_mask
from napari_diffrendergan.render.scene import VirtualScene

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def spheres():
    config = preset("sio2-him")
    config.meshes.count = 6
    config.scene.spp = 4
    config.scene.filter_stddev = 0.5  # sharp silhouettes (the preset blurs as HIM does)
    return VirtualScene(config, device="cpu")


def grid_phi(n, field_width, spacing=2.5):
    columns = 3
    phi = np.zeros((n, 4), np.float32)
    for i in range(n):
        phi[i] = ((i % columns - 1) * spacing, (i // columns - 0.5) * spacing, 0.0, 1.0)
    return phi


def pixel_of(x, y, config):
    """Image row/column of world (x, y) on the stage: +x to the right, +y up."""
    s = config.scene
    px = s.width / s.field_width
    return s.height / 2 - 0.5 - y * px, s.width / 2 - 0.5 + x * px


def test_each_sphere_gets_its_own_id_at_its_position(spheres):
    phi = grid_phi(6, spheres.config.scene.field_width)
    spheres.place(phi)
    labels = spheres.instances()
    assert labels.dtype == np.uint16
    assert sorted(np.unique(labels)) == list(range(7))
    for slot, (x, y, _, _) in enumerate(phi):
        rows, cols = np.nonzero(labels == slot + 1)
        row, col = pixel_of(x, y, spheres.config)
        # perspective: the silhouette of a sphere resting on the stage sits slightly outward
        assert abs(rows.mean() - row) < 6 and abs(cols.mean() - col) < 6
        radius_px = 0.5 * spheres.config.scene.width / spheres.config.scene.field_width
        assert len(rows) == pytest.approx(np.pi * radius_px**2, rel=0.15)


def test_replacing_updates_labels_without_rebuilding(spheres):
    scene_before = spheres.scene
    phi = grid_phi(6, spheres.config.scene.field_width)
    phi[:, 0] *= -1
    spheres.place(phi)
    labels = spheres.instances()
    assert spheres.scene is scene_before
    rows, cols = np.nonzero(labels == 1)
    assert cols.mean() > spheres.config.scene.width / 2  # slot 0 moved to the right


def test_labels_align_with_rendered_silhouettes(spheres):
    spheres.place(grid_phi(6, spheres.config.scene.field_width))
    spheres.set_bsdf({"stage.base_color": 0.0, "particle.base_color": 0.9})
    image = spheres.render(spp=16)
    labels = spheres.instances()
    bright = ndimage.binary_fill_holes(image > 0.25 * np.median(image[labels > 0]))
    iou = (bright & (labels > 0)).sum() / (bright | (labels > 0)).sum()
    assert iou > 0.9
    mask = semantic_mask(labels, 2)
    assert set(np.unique(mask)) == {0, 1, 2}


@pytest.mark.parametrize("name", ["stage.base_color", "particle.base_color"])
def test_gradients_match_finite_differences(spheres, name):
    spheres.place(grid_phi(6, spheres.config.scene.field_width))
    spheres.set_bsdf({"stage.base_color": 0.2, "particle.base_color": 0.6})
    key = spheres.bsdf_key(name)
    params = spheres.params
    dr.enable_grad(params[key])
    params.update()
    image = spheres.mi.render(spheres.scene, params, seed=3, spp=16)
    dr.backward(dr.mean(image, axis=None))
    gradient = float(dr.grad(params[key])[0])
    dr.disable_grad(params[key])
    value, h = spheres.bsdf[name], 0.02
    spheres.set_bsdf({name: value + h})
    up = spheres.render(seed=3, spp=16).mean()
    spheres.set_bsdf({name: value - h})
    down = spheres.render(seed=3, spp=16).mean()
    spheres.set_bsdf({name: value})
    assert np.isfinite(gradient) and gradient > 0
    assert gradient == pytest.approx((up - down) / (2 * h), rel=0.05)


def test_bad_constellations_are_rejected(spheres):
    with pytest.raises(ValueError, match=r"\(6, 4\)"):
        spheres.place(np.zeros((3, 4)))
    bad = grid_phi(6, 9.0)
    bad[0, 3] = np.nan
    with pytest.raises(ValueError, match="finite"):
        spheres.place(bad)
    with pytest.raises(KeyError, match="unknown BSDF parameter"):
        spheres.set_bsdf({"particle.glow": 1.0})


def test_annotated_renderer_retries_low_contrast_and_is_deterministic():
    from napari_diffrendergan.render.sampling import AnnotatedRenderer, RenderError, RenderValues

    config = preset("sio2-him")
    config.scene.width = config.scene.height = 64
    config.meshes.count = 5
    renderer = AnnotatedRenderer(config, device="cpu", spp=4)

    def dark_then_bright(phi, rng, calls=[0]):  # noqa: B006 - counts calls
        calls[0] += 1
        particle = 0.0 if calls[0] <= 2 else 0.9  # the first two are too dark: rejected
        return RenderValues.named(
            {"particle.base_color": particle, "stage.base_color": 0.05}, 0.001
        )

    sample = renderer.render((1, 0), dark_then_bright)
    assert sample.info["rejected"] == sample.info["attempt"] == 2
    assert sample.image.shape == (64, 64) and sample.instances.max() >= 1
    assert set(np.unique(sample.mask)) <= {0, 1, 2}
    assert sample.info["contrast"]["accepted"]
    counter = [0]
    again = renderer.render((1, 0), lambda phi, rng: dark_then_bright(phi, rng, counter))
    np.testing.assert_array_equal(again.image, sample.image)  # a sample depends on its key
    np.testing.assert_array_equal(again.instances, sample.instances)
    with pytest.raises(RenderError, match="contrast filter"):
        renderer.render(
            (1, 1), lambda phi, rng: RenderValues.named({"particle.base_color": 0.0}, 0.0), 2
        )
