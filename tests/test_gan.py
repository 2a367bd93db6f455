import json

import numpy as np
import pytest

from napari_diffrendergan.config import preset
from napari_diffrendergan.data.patches import Patch, PatchSet
from napari_diffrendergan.errors import Cancelled
from napari_diffrendergan.gan.networks import (
    ParameterSpace,
    build_discriminator,
    build_generator,
)
from napari_diffrendergan.gan.run import (
    GanRun,
    TrainingError,
    TrainingSettings,
    breadth,
    choose_best_epoch,
    fit_scene_to_patches,
    load_generator,
    load_real_patches,
)
from napari_diffrendergan.gan.training import train_iter
from napari_diffrendergan.progress import Monitor

TINY = dict(fid_images=4)


def test_generator_is_the_papers_fcn():
    import torch

    generator = build_generator(n_meshes=40, n_outputs=7, dropout=0.5)
    linears = [m for m in generator.modules() if isinstance(m, torch.nn.Linear)]
    dropouts = [m for m in generator.modules() if isinstance(m, torch.nn.Dropout)]
    assert [(m.in_features, m.out_features) for m in linears] == [
        (160, 128),
        (128, 128),
        (128, 128),
        (128, 128),
        (128, 7),
    ]
    assert len(dropouts) == 4
    assert all(hasattr(m.parametrizations, "weight") for m in linears)  # weight norm
    out = generator(torch.randn(3, 160))
    assert out.shape == (3, 7) and (out > 0).all() and (out < 1).all()


def test_discriminator_is_a_patchgan():
    import torch

    out = build_discriminator()(torch.rand(2, 1, 256, 256))
    assert out.shape == (2, 1, 30, 30)  # 70×70 patches of a 256² image


def test_parameter_space_follows_the_preset_limits():
    config = preset("tio2-sem")
    space = ParameterSpace.from_config(config)
    extras = ["film.mottle", "film.lines", "detector.blur"]
    assert space.names == config.learning.learned() + extras + ["noise"]
    assert space.bsdf_names == config.learning.learned()
    assert space.film_names == extras[:2] and space.index("detector.blur") == len(space.names) - 2
    assert space.low[-1] == pytest.approx(0.001) and space.high[-1] == pytest.approx(0.1)
    stage = space.names.index("stage.base_color")
    assert (space.low[stage], space.high[stage]) == pytest.approx((0.01, 0.8))
    rough = space.names.index("particle.roughness")
    assert space.high[rough] == pytest.approx(5.0)  # above 1 brightens rims
    unit = np.random.default_rng(0).random((5, len(space.names))).astype(np.float32)
    np.testing.assert_allclose(space.unscale(space.scale(unit)), unit, atol=1e-5)


def test_every_generator_output_says_what_it_does():
    from napari_diffrendergan.config import PARTICLE_BSDF_PARAMS
    from napari_diffrendergan.gan.networks import describe, meaning

    for role in ("particle", "stage"):
        for name in PARTICLE_BSDF_PARAMS:
            assert meaning(f"{role}.{name}").what.startswith(("particles: ", "stage (support): "))
    for name in ParameterSpace.from_config(preset("tio2-sem")).names:
        assert len(meaning(name).short) < 20 and len(describe(name)) < 140
    assert describe("noise").startswith("noise [of full scale]: σ of the detector's Gaussian noise")
    assert meaning("detector.blur").unit == "px"


def test_histograms_span_the_values_taken_and_name_what_each_parameter_does():
    from napari_diffrendergan.gan.networks import meaning
    from napari_diffrendergan.gan.plots import histogram_figure

    space = ParameterSpace.from_config(preset("tio2-sem"))
    unit = np.random.default_rng(0).uniform(0.40, 0.45, (50, len(space.names)))
    samples = space.scale(unit.astype(np.float32))
    samples[:, 0] = samples[0, 0]  # a collapsed output: one value
    figure = histogram_figure(samples, space, "epoch 3")
    for i, name in enumerate(space.names):
        ax = figure.axes[i]
        low, high = ax.get_xlim()
        assert low <= samples[:, i].min() and samples[:, i].max() <= high
        assert high - low < 0.1 * (space.high[i] - space.low[i])  # not the limits' range
        assert sum(p.get_height() for p in ax.patches) == 50  # every value drawn
        ticks = ax.get_yticks()
        assert np.allclose(ticks, np.round(ticks))  # counts: no half samples on the axis
        assert ax.get_title() == f"{name}\n{meaning(name).short}"
        assert f"limits {space.low[i]:g}–{space.high[i]:g}" in ax.get_xlabel()
    assert figure.axes[space.names.index("noise")].get_xlabel().startswith("of full scale; ")


def test_fid_plot_draws_the_untrained_level_and_the_floor_and_says_when_empty():
    from napari_diffrendergan.gan.plots import fid_figure

    epochs = [{"epoch": 0, "fid": 300.0}, {"epoch": 1, "fid": 250.0, "breadth": 0.1}]
    ax = fid_figure({"epochs": epochs, "best_epoch": 1, "fid_floor": 40.0}).axes[0]
    levels = {line.get_label(): line.get_ydata()[0] for line in ax.lines}
    assert levels["untrained (epoch 0): 300"] == 300 and levels["real vs real (floor): 40"] == 40
    assert ax.get_ylim()[0] <= 40 <= 300 <= ax.get_ylim()[1]
    empty = fid_figure({"epochs": [], "best_epoch": None}).axes[0]
    assert not empty.lines and "no epochs yet" in empty.texts[0].get_text()


def test_best_epoch_is_the_broadest_of_the_five_lowest_fids():
    epochs = [
        {"epoch": 1, "fid": 300, "breadth": 0.9},  # broadest, but not among the 5 lowest
        {"epoch": 2, "fid": 150, "breadth": 0.05},  # lowest FID, collapsed
        {"epoch": 3, "fid": 160, "breadth": 0.20},
        {"epoch": 4, "fid": 170, "breadth": 0.30},  # chosen
        {"epoch": 5, "fid": 155, "breadth": 0.10},
        {"epoch": 6, "fid": 165, "breadth": 0.15},
        {"epoch": 7, "fid": float("nan"), "breadth": 1.0},
    ]
    assert choose_best_epoch(epochs) == 4
    assert choose_best_epoch([]) is None
    assert breadth(np.full((10, 3), 0.5)) == 0
    assert breadth(np.random.default_rng(0).random((2000, 3))) == pytest.approx(0.2887, abs=0.01)


def _patch_set(folder, images, roles=None):
    roles = roles or ["particle"] * len(images)
    patches = [Patch("test", 0, 0, images[0].shape[0], role, 0.0, 3) for role in roles]
    return PatchSet.save(folder, patches, list(images), 7.0, {}).folder


def _blob_patches(folder, count=6, size=64):
    from conftest import blob_sample

    images = [(blob_sample(s, (size, size), n=3)[0] * 255).clip(0, 255) for s in range(count)]
    return _patch_set(folder, images)


def test_real_patches_are_scaled_to_the_unit_range(tmp_path):
    folder = _blob_patches(tmp_path / "p", count=2)
    real, meta = load_real_patches(folder)
    assert real.shape == (2, 64, 64) and real.dtype == np.float32
    assert meta["intensity_range"] == 255 and real.min() >= 0 and real.max() <= 1
    empty = _patch_set(tmp_path / "bg", [np.zeros((64, 64), np.float32)], ["background"])
    with pytest.raises(TrainingError, match="no particle patches"):
        load_real_patches(empty)


def test_scene_is_fitted_to_the_patch_size_keeping_pixel_scale_and_density():
    config = fit_scene_to_patches(preset("tio2-sem"), 128)
    assert (config.scene.width, config.scene.field_width, config.meshes.count) == (128, 4.0, 6)


@pytest.mark.slow
def test_training_writes_a_resumable_run(tmp_path):
    patches = _blob_patches(tmp_path / "patches")
    run = tmp_path / "run"
    settings = TrainingSettings(epochs=2, iterations_per_epoch=3, device="cpu", **TINY)
    GanRun.create(run, patches, preset("tio2-sem"), settings)
    GanRun.create(run, patches, preset("tio2-sem"), settings)  # no epoch yet: replaced
    events = list(train_iter(run))
    assert [e.step for e in events if e.kind == "iteration"] == list(range(1, 7))
    epoch_events = [e for e in events if e.kind == "epoch"]
    assert epoch_events[-1].preview.shape == (64, 64)
    assert epoch_events[-1].samples.shape == (TINY["fid_images"], 8)  # the FID set's values

    metrics = json.loads((run / "metrics.json").read_text())
    assert [e["epoch"] for e in metrics["epochs"]] == [0, 1, 2]
    untrained, *trained = metrics["epochs"]
    assert np.isfinite(untrained["fid"]) and metrics["fid_floor"] > 0  # epoch 0 and the floor
    for record in trained:
        assert {"fid", "loss_g", "loss_d", "seconds_per_iteration"} <= set(record)
        assert np.isfinite(record["fid"]) and record["fid"] > 0
    assert metrics["best_epoch"] in (1, 2)
    for name in ("config.json", "training.json", "phi.npz", "fid.png"):
        assert (run / name).is_file()
    for folder, count in (("checkpoints", 3), ("histograms", 2), ("previews", 2), ("samples", 2)):
        assert len(list((run / folder).iterdir())) == count  # checkpoints: also epoch 0
    samples = np.load(run / "samples" / "epoch_002.npy")
    space = ParameterSpace.from_config(preset("tio2-sem"))
    assert (samples >= space.low - 1e-6).all() and (samples <= space.high + 1e-6).all()

    with pytest.raises(TrainingError, match="already holds a run"):
        GanRun.create(run, patches, preset("tio2-sem"), settings)
    # cancel during epoch 3: nothing of it is kept
    monitor = Monitor()
    with pytest.raises(Cancelled):
        for event in train_iter(run, epochs=3, monitor=monitor):
            if event.kind == "iteration":
                monitor.cancel()
    assert GanRun(run).finished_epochs() == [1, 2]
    assert not GanRun(run).checkpoint_path(3).exists()
    # resume: epochs 1-2 untouched, epoch 3 added
    before = GanRun(run).metrics()["epochs"]
    list(train_iter(run, epochs=3))
    after = GanRun(run).metrics()["epochs"]
    assert after[:3] == before and after[3]["epoch"] == 3

    generator = load_generator(run, "last")
    assert generator.epoch == 3
    phi = np.load(run / "phi.npz")["phi"][:2]
    drawn = generator.sample(phi)
    assert drawn.shape == (2, 8) and not np.allclose(drawn[0], drawn[1])  # per constellation
    np.testing.assert_array_equal(drawn, generator.sample(phi))  # eval mode: deterministic

    assert GanRun(run).set_best_epoch(2) == 2 and load_generator(run).epoch == 2
    with pytest.raises(TrainingError, match="not finished"):
        GanRun(run).set_best_epoch(9)
    assert GanRun(run).set_best_epoch(None) == choose_best_epoch(after)

    (run / "checkpoints" / "epoch_003.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(TrainingError, match="damaged"):
        load_generator(run, 3)
    with pytest.raises(TrainingError, match="not a DiffRenderGAN run"):
        load_generator(tmp_path)
    # a truncated last checkpoint: resuming falls back to epoch 2 and trains epoch 3 again
    events = list(train_iter(run, epochs=3))
    assert any(e.kind == "note" and "damaged" in e.message for e in events)
    assert GanRun(run).finished_epochs() == [1, 2, 3]
    assert load_generator(run, 3).epoch == 3


@pytest.mark.slow
def test_parameter_recovery_moves_towards_known_values(tmp_path):
    from napari_diffrendergan.gan.recovery import recover, render_truth_patches

    # the budget of benchmarks/parameter_recovery.py --size 64 --epochs 4 --iterations 100
    truth = render_truth_patches(tmp_path / "patches", size=64, count=32)
    metrics = recover(tmp_path / "patches", tmp_path / "run", epochs=4, iterations=100)
    untrained, last = metrics["epochs"][0], metrics["epochs"][-1]
    assert untrained["epoch"] == 0 and last["epoch"] == 4
    # the two base colours and the noise: much closer to the truth than the untrained generator
    for name in ("particle.base_color", "stage.base_color", "noise"):
        start = untrained["parameters"][name]["mean"]
        learned = last["parameters"][name]["mean"]
        assert abs(learned - truth[name]) < 0.8 * abs(start - truth[name]), (name, start, learned)
    assert last["fid"] < untrained["fid"]


def _recorder():
    reports = []
    return reports, Monitor(lambda done, total, message: reports.append((done, total, message)))


def _stages(reports) -> dict[str, list[tuple[int, int]]]:
    """Set-up reports by stage (in the order they began): each stage's (done, total)."""
    stages: dict[str, list[tuple[int, int]]] = {}
    for done, total, message in reports:
        if message.startswith("set-up "):
            stages.setdefault(message.split(": ")[0], []).append((done, total))
    return stages


@pytest.mark.slow
def test_setup_runs_in_stages_and_a_resume_with_its_cache_skips_it(tmp_path, tiny_run):
    import shutil

    from napari_diffrendergan.gan.training import SETUP_STAGES, SetupCache

    patches = shutil.copytree(tiny_run.parent / "patches", tmp_path / "patches")
    settings = TrainingSettings(epochs=1, iterations_per_epoch=3, device="cpu", **TINY)
    run = GanRun.create(tmp_path / "run", patches, preset("tio2-sem"), settings).folder
    twin = shutil.copytree(run, tmp_path / "twin")
    reports, monitor = _recorder()
    cache = SetupCache()
    list(train_iter(run, monitor=monitor, cache=cache))
    stages = _stages(reports)
    assert list(stages) == [f"set-up {i + 1}/4, {name}" for i, name in enumerate(SETUP_STAGES)]
    for progress in stages.values():
        assert len({total for _, total in progress}) == 1  # one bar per stage
        assert [done for done, _ in progress] == sorted(done for done, _ in progress)
    assert stages["set-up 2/4, tracing the constellations"][-1] == (3, 3)  # 3 constellations
    training = [m for _, _, m in reports if m.startswith("epoch 1/1, iteration")]
    assert len(training) == 3 and all(" left" in m for m in training)  # time left, once known

    # a resume with the cache traces nothing; one without (the twin) sets up again, and both
    # train the same epoch
    reports.clear()
    events = list(train_iter(run, epochs=2, monitor=monitor, cache=cache))
    assert _stages(reports) == {} and "reusing the set-up" in reports[0][2]
    assert events[-1].seconds_left == 0
    list(train_iter(twin, epochs=1))
    reports.clear()
    list(train_iter(twin, epochs=2, monitor=monitor, cache=cache))  # another run: not its cache
    assert len(_stages(reports)) == 3
    ours, theirs = GanRun(run).metrics()["epochs"][-1], GanRun(twin).metrics()["epochs"][-1]
    assert (
        ours["fid"] == pytest.approx(theirs["fid"]) and ours["parameters"] == theirs["parameters"]
    )


def test_generator_outputs_are_named_by_meaning():
    import torch

    space = ParameterSpace.from_config(preset("tio2-sem"))
    row = np.arange(len(space.names), dtype=np.float32)
    values = space.values(row)
    assert values.names == space.bsdf_names
    np.testing.assert_array_equal(values.material, row[: len(space.bsdf_names)])
    assert list(values.film) == [4.0, 5.0] and values.blur == 6.0 and values.noise == 7.0
    assert set(values.bsdf()) == set(space.bsdf_names)  # no film or blur among the BSDF values
    assert list(values.recorded()) == space.names[:-1]
    tensor = torch.arange(len(space.names), dtype=torch.float32, requires_grad=True)
    named = space.values(tensor)
    (named.material.sum() + named.film.sum() + 10 * named.blur + 100 * named.noise).backward()
    assert tensor.grad.tolist() == [1, 1, 1, 1, 1, 1, 10, 100]  # each output in one place
    config = preset("tio2-sem")
    config.learning.film = config.learning.blur = False
    no_extras = ParameterSpace.from_config(config)
    plain = no_extras.values(np.ones(len(no_extras.names), np.float32))
    assert len(plain.film) == 0 and plain.blur is None


def test_training_stops_when_the_fid_has_not_improved_for_patience_epochs():
    from napari_diffrendergan.gan.training import stop_reason

    def records(*fids):
        return [{"epoch": e, "fid": f} for e, f in enumerate(fids)]

    falling = records(300, 200, 150, 120)
    assert stop_reason(falling, 1, 2) is None
    stuck = records(300, 200, 150, 160, 170)  # lowest at epoch 2, then 2 worse epochs
    assert stop_reason(stuck, 1, 3) is None
    assert stop_reason(stuck, 1, 2) == "no FID improvement for 2 epochs since epoch 2"
    assert stop_reason(stuck, 1, 0) is None  # 0: never
    assert stop_reason(records(100, 200, 210, 220), 1, 2) is not None  # epoch 0 is no candidate
    assert stop_reason(records(300, float("nan"), 150, 160, 170), 1, 2) is not None
    # a resumed call (from epoch 4 on) trains at least `patience` epochs before stopping again
    assert stop_reason(stuck, 4, 2) is None
    assert stop_reason(records(300, 200, 150, 160, 170, 180), 4, 2) is not None


class _Constant:
    """A stand-in generator: the same [0, 1] outputs for every constellation."""

    def __init__(self, unit):
        self.unit = unit

    def __call__(self, phi):
        import torch

        return torch.as_tensor(self.unit).expand(len(phi), -1).clone()

    def eval(self):
        return self

    def train(self):
        return self


def _trainer(folder, patches, config=None, **settings):
    from napari_diffrendergan.gan.training import Trainer

    defaults = dict(epochs=1, iterations_per_epoch=3, device="cpu", **TINY)
    run = GanRun.create(
        folder, patches, config or preset("tio2-sem"), TrainingSettings(**defaults | settings)
    )
    trainer = Trainer(run, None, Monitor())
    return trainer


@pytest.mark.slow
def test_trainer_phases_and_one_image_in_training_fid_and_synthesis(tmp_path, tiny_run):
    import torch

    from napari_diffrendergan.gan.run import TrainedGenerator
    from napari_diffrendergan.gan.training import _synthetic_set
    from napari_diffrendergan.render.sampling import AnnotatedRenderer

    config = preset("tio2-sem")
    config.learning.noise_limits = (0.0, 0.1)  # σ 0 below: images comparable across paths
    trainer = _trainer(tmp_path / "run", tiny_run.parent / "patches", config)
    notes = list(trainer.resume())
    assert trainer.start == 1 and all(e.kind == "note" for e in notes)
    kinds = [e.kind for e in trainer.set_up()]
    assert kinds == ["setup"] * 3 and trainer.renders.exact and trainer.total == 3
    before = [p.detach().clone() for p in trainer.generator.parameters()]
    loss_g, loss_d = trainer.step(1, 0)
    assert np.isfinite(loss_g) and np.isfinite(loss_d)
    after = list(trainer.generator.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))
    record, synthetic, values = trainer.evaluate(1, Monitor())
    assert synthetic.shape == (4, 64, 64) and values.shape == (4, 8)
    assert np.isfinite(record["fid"]) and record["breadth"] > 0
    trainer.checkpoint(1, record | {"loss_g": loss_g, "loss_d": loss_d}, values, synthetic)
    assert trainer.run.finished_epochs() == [1]
    state = trainer.run.load_checkpoint(1)
    assert state["numpy_rng"] == trainer.rng.bit_generator.state
    # a resume restores what the checkpoint holds
    again = _trainer_of(trainer.run)
    list(again.resume())
    assert again.start == 2
    for mine, theirs in zip(again.generator.parameters(), after, strict=True):
        assert torch.equal(mine, theirs)

    # the same outputs give the same image in training, FID and synthesis
    space = trainer.space
    unit = np.full(len(space.names), 0.5, np.float32)
    unit[-1] = 0.0  # noise σ 0
    constant = _Constant(unit)
    trainer.generator = constant
    training = trainer.fake(1)[0, 0].detach().numpy()
    fid, _ = _synthetic_set(constant, space, trainer.renders, trainer.phi_input, 2, True, Monitor())
    generator = TrainedGenerator(trainer.config, space, constant, 1, trainer.run)
    phi, seed = trainer.phis[1], int(_trace_seed(trainer, 1))
    chosen = generator.values(phi, None)
    renderer = AnnotatedRenderer(trainer.config, device="cpu")
    synthesis = chosen.detector(renderer.clean_image(phi, chosen, seed), 0.0, True)
    assert chosen.film and chosen.blur > 0  # film and blur take part
    np.testing.assert_allclose(training, fid[1], atol=1e-5)
    np.testing.assert_allclose(synthesis, fid[1], atol=2e-4)
    assert not np.allclose(fid[0], fid[1], atol=1e-2)  # another constellation


def _trainer_of(run):
    from napari_diffrendergan.gan.training import Trainer

    return Trainer(run, None, Monitor())


def _trace_seed(trainer, index):
    from napari_diffrendergan.gan.training import _trace_seeds

    return _trace_seeds(trainer.settings, len(trainer.phis))[index]


@pytest.mark.slow
def test_a_run_that_stops_early_says_why_and_resumes(tmp_path, tiny_run, monkeypatch):
    from napari_diffrendergan.gan import training

    fids = iter([300.0, 200, 150, 160, 170, 100, 90, 80, 85])  # epochs 0, 1, 2, ...
    monkeypatch.setattr(training._FID, "__call__", lambda self, images, monitor: next(fids))
    trainer = _trainer(tmp_path / "run", tiny_run.parent / "patches", epochs=6)
    run = trainer.run
    events = list(train_iter(run, patience=2))
    assert events[-1].kind == "stopped"
    assert events[-1].message == "no FID improvement for 2 epochs since epoch 2"
    assert run.finished_epochs() == [1, 2, 3, 4] and run.stopped == events[-1].message
    assert run.metrics()["stopped"]["after_epoch"] == 4
    assert run.best_epoch in (1, 2, 3, 4)  # the paper's rule, unchanged
    # resumed, it trains on: FID falls again, all epochs are done
    events = list(train_iter(run, epochs=8, patience=2))
    assert run.finished_epochs() == list(range(1, 9))
    assert events[-1].message == "all epochs done" == run.stopped
    monitor = Monitor()
    with pytest.raises(Cancelled):
        for event in train_iter(run, epochs=9, monitor=monitor, patience=2):
            if event.kind == "iteration":
                monitor.cancel()
    assert run.stopped == "cancelled in epoch 9" and run.finished_epochs()[-1] == 8


@pytest.mark.slow
def test_fallback_path_trains_and_scores_on_distinct_constellations(
    tmp_path, tiny_run, monkeypatch
):
    import torch

    from napari_diffrendergan.gan import training
    from napari_diffrendergan.render import shading

    monkeypatch.setattr(shading, "find_shading_basis", lambda *args, **kwargs: None)
    scored = []
    original = training._SampleRenders.eval_image

    def eval_image(self, index, values):
        scored.append(index)
        return original(self, index, values)

    monkeypatch.setattr(training._SampleRenders, "eval_image", eval_image)
    trainer = _trainer(tmp_path / "run", tiny_run.parent / "patches", iterations_per_epoch=5)
    before = [p.detach().clone() for p in trainer.generator.parameters()]
    events = list(trainer.events())
    metrics = trainer.run.metrics()
    assert not trainer.renders.exact and metrics["exact_renders"] is False
    assert [e["epoch"] for e in metrics["epochs"]] == [0, 1]
    assert all(np.isfinite(e["fid"]) for e in metrics["epochs"])
    assert scored == [0, 1, 2, 3] * 2  # the FID sets of epochs 0 and 1: 4 constellations each
    after = list(trainer.generator.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))
    preview = events[-2].preview
    assert preview.shape == (64, 64) and np.isfinite(preview).all()


def test_settings_removed_since_a_run_was_made_are_ignored_with_a_note(tmp_path):
    patches = _blob_patches(tmp_path / "patches", count=2)
    run = GanRun.create(tmp_path / "run", patches, preset("tio2-sem"), TrainingSettings())
    info = json.loads((run.folder / "training.json").read_text())
    assert not {"reuse", "pool", "fid_constellations"} & set(info["settings"])
    assert _trainer_notes(run) == []
    info["settings"] |= {"reuse": 8, "pool": 8, "fid_constellations": 8}  # an older run
    (run.folder / "training.json").write_text(json.dumps(info))
    old = GanRun(run.folder)
    assert old.settings == TrainingSettings()
    notes = _trainer_notes(old)
    assert len(notes) == 3 and all("no longer used and is ignored" in n for n in notes)
    assert "'reuse'" in notes[0] and "training.json" in notes[0]


def _trainer_notes(run) -> list[str]:
    """Notes of a training's resume phase but the small-patch one."""
    events = list(_trainer_of(run).resume())
    return [e.message for e in events if e.kind == "note" and "px hold" not in e.message]
