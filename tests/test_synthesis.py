"""Synthetic datasets from a tiny trained run: files, determinism, resuming, errors, Dask."""

import json
import shutil

import numpy as np
import pytest
import tifffile

from napari_diffrendergan.data.dataset import NnunetDataset
from napari_diffrendergan.data.patches import Patch, PatchSet
from napari_diffrendergan.gan.run import TrainingError, load_generator
from napari_diffrendergan.gan.synthesis import PairRenderer, SynthesisError, generate
from napari_diffrendergan.progress import Monitor

pytestmark = pytest.mark.slow


def _bytes(folder, pattern="imagesTr/syn_*.tif"):
    return {p.name: p.read_bytes() for p in sorted(folder.glob(pattern))}


def assert_same_pairs(folder, other, exact_images=True):
    """Same synthetic pairs: labels, instances and parameters byte for byte; images too, or
    (across different thread counts, where Embree builds its BVH in parallel) to 1e-6."""
    patterns = ["labelsTr/syn_*.tif", "instances/*.tif", "parameters/*.json"]
    for pattern in patterns + (["imagesTr/syn_*.tif"] if exact_images else []):
        assert _bytes(folder, pattern) == _bytes(other, pattern)
    if not exact_images:
        for name in _bytes(folder):
            a = tifffile.imread(folder / "imagesTr" / name)
            np.testing.assert_allclose(a, tifffile.imread(other / "imagesTr" / name), atol=1e-6)


def test_generate_writes_a_deterministic_nnunet_dataset(tiny_run, tmp_path):
    patches = tiny_run.parent / "patches"
    out = tmp_path / "Dataset101_Syn"
    steps = []
    summary = generate(
        tiny_run,
        out,
        3,
        seed=5,
        background_patches=patches,
        n_background=2,
        device="cpu",
        monitor=Monitor(lambda done, total, message: steps.append((done, total))),
    )
    assert steps[0] == (0, 3) and steps[-1] == (3, 3)
    names = sorted(p.name for p in (out / "imagesTr").iterdir())
    assert names == [f"bg_0000{i}_0000.tif" for i in range(2)] + [
        f"syn_0000{i}_0000.tif" for i in range(3)
    ]
    assert len(list((out / "labelsTr").iterdir())) == 5
    assert (
        len(list((out / "instances").glob("*.tif")))
        == len(list((out / "parameters").iterdir()))
        == 3
    )
    assert json.loads((out / "dataset.json").read_text())["numTraining"] == 5
    written = json.loads((out / "generation.json").read_text())
    assert written == json.loads(json.dumps(summary))
    assert written["synthetic_pairs"] == 3 and written["seed"] == 5
    assert written["background_patches"] == written["background_requested"] == 2
    assert written["rejected"] == sum(i["rejected"] for i in written["images"])
    assert written["epoch"] == 1 and written["contour_thickness"] == 2  # the preset's
    for i in range(3):
        image = tifffile.imread(out / "imagesTr" / f"syn_0000{i}_0000.tif")
        mask = tifffile.imread(out / "labelsTr" / f"syn_0000{i}.tif")
        instances = tifffile.imread(out / "instances" / f"syn_0000{i}.tif")
        assert image.shape == mask.shape == instances.shape == (64, 64)
        assert image.dtype == np.float32 and mask.dtype == np.uint8
        assert set(np.unique(mask)) <= {0, 1, 2} and 1 in mask
        np.testing.assert_array_equal(mask > 0, instances > 0)
    for i in range(2):
        assert not tifffile.imread(out / "labelsTr" / f"bg_0000{i}.tif").any()

    again = generate(tiny_run, tmp_path / "again", 3, seed=5, device="cpu")
    assert_same_pairs(tmp_path / "again", out)
    assert again["background_requested"] == again["background_patches"] == 0
    other = generate(tiny_run, tmp_path / "other", 3, seed=6, contour_thickness=1, device="cpu")
    assert other["seed"] == 6
    # the index records the contour width, which models trained on it need
    assert json.loads((out / "dataset.json").read_text())["contour_thickness"] == 2
    assert NnunetDataset(tmp_path / "other").contour_thickness == 1
    theirs, ours = _bytes(tmp_path / "other"), _bytes(out)
    assert theirs.keys() == ours.keys() and all(theirs[k] != ours[k] for k in ours)

    # the renderer gives the same pair for the same (seed, index), in any order
    renderer = PairRenderer(load_generator(tiny_run), seed=5, device="cpu")
    pair = renderer.render(2)
    np.testing.assert_array_equal(pair.image, tifffile.imread(out / "imagesTr/syn_00002_0000.tif"))
    assert pair.info == written["images"][2]


def test_generate_resumes_only_missing_pairs(tiny_run, tmp_path):
    out = tmp_path / "Dataset102_Syn"
    generate(tiny_run, out, 3, device="cpu")
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.tif")} | {
        p: p.stat().st_mtime_ns for p in (out / "parameters").iterdir()
    }
    (out / "parameters" / "syn_00001.json").unlink()
    steps = []
    monitor = Monitor(lambda done, total, message: steps.append(done))
    generate(tiny_run, out, 3, device="cpu", monitor=monitor)
    assert steps == [2, 3]  # two already written, then pair 1: all three done
    rewritten = {p for p, mtime in before.items() if p.stat().st_mtime_ns != mtime}
    assert rewritten == {
        out / "imagesTr" / "syn_00001_0000.tif",
        out / "labelsTr" / "syn_00001.tif",
        out / "instances" / "syn_00001.tif",
        out / "parameters" / "syn_00001.json",
    }
    # pair 1 rendered again alone is the pair rendered among the others
    assert_same_pairs(out, _fresh(tiny_run, tmp_path / "fresh"))
    with pytest.raises(SynthesisError, match=r"seed 0 \(asked: 3\)"):
        generate(tiny_run, out, 4, seed=3, device="cpu")  # would mix two seeds in one dataset
    assert not (out / "parameters" / "syn_00003.json").exists()


def _fresh(run, folder):
    generate(run, folder, 3, device="cpu")
    return folder


def test_low_contrast_configuration_is_refused(tiny_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    config = json.loads((run / "config.json").read_text())
    config["contrast_threshold"] = 100.0
    (run / "config.json").write_text(json.dumps(config))
    with pytest.raises(SynthesisError, match="attempts failed the contrast filter"):
        generate(run, tmp_path / "out", 1, device="cpu")
    assert not (tmp_path / "out" / "generation.json").exists()


def test_bad_runs_and_counts_are_explained(tiny_run, tmp_path):
    with pytest.raises(TrainingError, match="not a DiffRenderGAN run folder"):
        generate(tmp_path, tmp_path / "out", 1)
    with pytest.raises(TrainingError, match=r"no checkpoint for epoch 7 \(finished: \[1\]\)"):
        generate(tiny_run, tmp_path / "out", 1, epoch=7)
    with pytest.raises(SynthesisError, match="count must be at least 1"):
        generate(tiny_run, tmp_path / "out", 0)
    particles_only = PatchSet.save(
        tmp_path / "particles",
        [Patch("x", 0, 0, 64, "particle", 0.0, 3)],
        [np.ones((64, 64))],
        7.0,
        {},
    ).folder
    with pytest.raises(SynthesisError, match="holds no background patches"):
        generate(tiny_run, tmp_path / "out", 1, device="cpu", background_patches=particles_only)


def test_dask_workers_write_the_same_files(tiny_run, tmp_path):
    generate(tiny_run, tmp_path / "one", 3, seed=2, device="cpu")
    summary = generate(tiny_run, tmp_path / "two", 3, seed=2, workers=2, device="cpu")
    assert summary["synthetic_pairs"] == 3
    assert_same_pairs(tmp_path / "two", tmp_path / "one", exact_images=False)


def _background_set(folder, pixel_size_nm, images):
    patches = [Patch("scan", 0, 64 * i, 64, "background", 0.0, 3) for i in range(len(images))]
    return PatchSet.save(folder, patches, images, pixel_size_nm, {}).folder


def test_background_patches_at_another_scale_are_refused_or_converted(tiny_run, tmp_path):
    """The run's patches are 0–255 data at 7 nm per pixel (the ``tiny_run`` fixture)."""
    from napari_diffrendergan.gan.synthesis import export_pairs

    rng = np.random.default_rng(1)
    levels = [rng.uniform(0.1, 0.3, (64, 64)).astype(np.float32) for _ in range(2)]
    for size, problem in ((5.0, "at 5 nm per pixel, the run's are at 7"), (None, "no pixel size")):
        folder = _background_set(tmp_path / f"bg{size}", size, levels)
        with pytest.raises(SynthesisError, match=problem) as refused:
            generate(tiny_run, tmp_path / "out", 1, background_patches=folder, device="cpu")
        assert "--pixel-size 7" in str(refused.value) and not (tmp_path / "out").exists()
    generator = load_generator(tiny_run)
    pair = PairRenderer(generator, seed=1, spp=4, device="cpu").render(0)
    with pytest.raises(SynthesisError, match="no pixel size"):
        export_pairs(NnunetDataset(tmp_path / "export"), [pair], generator, folder, 2)
    assert not (tmp_path / "export").exists()  # refused before any pair was written

    # 0–1 data beside the run's 0–255 patches: divided by 1, not 255, and said so
    floats = _background_set(tmp_path / "floats", 7.0, levels)
    out = tmp_path / "converted"
    summary = export_pairs(NnunetDataset(out), [pair], generator, floats, 2)
    written = sorted((out / "imagesTr").glob("bg_*.tif"))
    assert len(written) == 2
    assert sorted(float(tifffile.imread(p).mean()) for p in written) == pytest.approx(
        sorted(float(level.mean()) for level in levels)
    )
    assert "0–1 (floating point) data, the run's patches 0–255 (8-bit)" in summary["notes"][0]
    # every JSON of the dataset says its pixel size
    for path in (
        "dataset.json",
        "generation.json",
        "parameters/syn_00000.json",
        "instances/syn_00000.json",
    ):
        assert json.loads((out / path).read_text())["pixel_size_nm"] == 7.0, path
