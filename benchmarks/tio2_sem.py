"""The paper's Table 1 for real TiO2 SEM scans, on a CPU budget: nnU-Net trained only on
DiffRenderGAN data vs nnU-Net trained on manual annotations, both scored on held-out scans.

Two synthetic-only arms (``--arms``, default both): *calibrated*, whose scene prior
``diffrendergan calibrate`` measures on the unannotated training scans (nothing in this arm
comes from manual masks: it is the report's ``synthetic`` model), and *hand-set*, the ``tio2-sem``
preset whose sizes and agglomeration were read off the training scans' masks
(``synthetic_handset``). With ``--invert`` the 32 scans are inverted (1 − scan, masks unchanged):
dark particles on a bright film, calibrated arm only (the hand-set preset is bright).
``--real-baseline no`` leaves out the real-trained model (stages 3 and 4), e.g. for the inverted
scans, where it would learn the bright run's task with its inputs negated. ``--earlier-report``
takes the rows this run leaves out from an earlier run's ``report.json`` on the same validation
scans: the hand-set row and FID curve when ``--arms`` leaves the hand-set arm out, the
real-trained row with ``--real-baseline no`` (the report names the commits of the run that made
each).

Stages (each resumable: run the same command again to continue where it stopped; a stage made
by another commit of the code is refused unless ``--keep-stages`` is given, and the report then
names each stage's commit; ``--redo STAGE`` makes it and every stage that uses it again). The
hand-set arm's stages and folders keep the names of the runs before the calibrated arm existed
(``gan``, ``synthetic``, ``nnunet``, ``predict``; ``model_synthetic``), so ``--keep-stages``
reuses them; the calibrated arm's carry ``_calibrated``.

1. patches      256² patches from the 24 training scans, without their masks: 124 particle
                patches (≥ 3 whole particles by Otsu threshold) for the GAN, and every empty
                background patch.
2. calibration  the scene prior of the 24 training scans (images only, data bar left out, pixel
                size from their TIFF metadata), as ``diffrendergan calibrate --like LIKE``
                makes it (the preset at the density of the particle patches):
                ``calibration/report.json``, ``calibrate.txt`` and the preset
                ``calibrated.json``; its polarity also tells the classic baseline which side of
                the threshold the particles lie.
3. real         the baseline's dataset: the training scans with their manual masks (3-class).
4. nnunet_real  the small nnU-Net on it.
5. per arm (``_calibrated`` or nothing):
   gan          DiffRenderGAN from the arm's preset: FID before training (epoch 0) and after
                every epoch, the real-vs-real floor, best epoch by the paper's rule.
   synthetic    synthetic pairs from the best epoch + the most structured background patches of
                every training scan; with ``--ablation`` also from the untrained generator.
   nnunet       the small nnU-Net on them (same iterations as the baseline, ``--seeds`` seeds).
   predict      how touching particles are split and the smallest particle kept, chosen by
                AP50 on the arm's own held-out synthetic pairs + the background patches its
                dataset left out (no real annotation); the smallest core a dip splits between:
                120 px for the hand-set arm (set on the training scans), for the calibrated arm
                the core inside the contour band of a particle of the calibrated 10th size
                percentile (``seed_area_for``); the arm's models segment the 8 validation scans.
6. predict_baselines  the real-trained model and the classic Otsu + watershed route (particles
                of the calibrated polarity), with the hand-set arm's rule when it runs, else the
                calibrated arm's (``predictions/baselines.json``).
7. report       ``report.md`` and ``report.json``; ``--docs DIR`` writes
                ``tio2-sem-experiment[-inverted].md``/``.json`` and the figures there.

Budgets (``--budget``): ``cpu`` fits 2 hours on 2 cores per arm; ``gpu`` trains the GAN for the
paper's 50 epochs and nnU-Net's default network for longer; ``auto`` (default) picks ``gpu``
when CUDA is present. Any budget value can be overridden by its option.

Run: ``.venv/bin/python benchmarks/tio2_sem.py --out DIR [--budget auto|cpu|gpu] [--docs docs]``
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from functools import partial
from pathlib import Path
from typing import NamedTuple

import numpy as np

from napari_diffrendergan.analysis.particles import MIN_SEED_AREA
from napari_diffrendergan.cli import progress_bar
from tio2_data import PATCHES, PIXEL_SIZE_NM, SHARED, read_image, read_scan, split

BUDGETS = {
    "cpu": {
        "gan_epochs": 20,
        "gan_spp": 121,
        "spp": 121,
        "pairs": 1000,
        "pair_workers": 2,  # two one-thread processes beat one (docs/synthesis.md)
        "background": 200,
        "seg_config": "small",
        # 4000 beat 2000 on held-out synthetic pairs (AP50 0.827 vs 0.809) and the training
        # scans (0.574 vs 0.554); 3500 per model is what fits the 2 h with both models
        "seg_iterations": 3500,
        # predictions average 4 flips: on the 24 training scans the cc04213 synthetic-only
        # model's pooled AP50 0.596 → 0.614 and Dice 0.946 → 0.951 (docs/segmentation.md)
        "mirroring": "all",
        "seeds": 1,
        "ablation": True,
    },
    "gpu": {
        "gan_epochs": 50,
        "gan_spp": 121,
        "spp": 121,
        "pairs": 1000,
        "pair_workers": 1,
        "background": 200,
        "seg_config": "default",
        "seg_iterations": 12500,
        "mirroring": "all",
        "seeds": 3,
        "ablation": True,
    },
}
STAGES = (
    "patches",
    "calibration",
    "real",
    "nnunet_real",
    "gan_calibrated",
    "synthetic_calibrated",
    "nnunet_calibrated",
    "predict_calibrated",
    "gan",
    "synthetic",
    "nnunet",
    "predict",
    "predict_baselines",
)
# settings added after experiment folders existed, with the value those folders were made with
LATER_SETTINGS = {"invert": False, "like": "tio2-sem", "real_baseline": True}
SELECTION_PAIRS = 24
SPLIT_DISTANCES = (6, 9, 12, 15)
MIN_AREAS = (4, 20, 40)
CORE_THRESHOLDS = (0.6, 0.75, 0.9, 0.95)


class Arm(NamedTuple):
    """A synthetic-only arm: where its GAN's scene prior comes from, and the names of its
    stages and folders (the hand-set arm keeps those of the runs before the calibrated one)."""

    name: str
    suffix: str  # of its stage names and its GAN and dataset folders
    model: str  # its dataset's, models' and predictions' name
    report: str  # its models' key in report.json
    dataset_id: int

    def stage(self, kind: str) -> str:
        return f"{kind}{self.suffix}"

    @property
    def untrained(self) -> str:
        """Its ablation: the same pairs from the untrained generator (epoch 0)."""
        return f"untrained{self.suffix}"


ARMS = {
    "calibrated": Arm("calibrated", "_calibrated", "calibrated", "synthetic", 3),
    "handset": Arm("handset", "", "synthetic", "synthetic_handset", 1),
}


class Rule(NamedTuple):
    """How touching particles are split: at particle-probability dips below ``core`` (None:
    not), then by a distance watershed with peaks ``distance`` px apart (None: not); pieces
    under ``floor`` px dropped."""

    core: float | None
    distance: int | None
    floor: int

    @property
    def name(self) -> str:
        parts = [] if self.core is None else [f"dips < {self.core}"]
        parts += [] if self.distance is None else [f"watershed {self.distance} px"]
        return f"{' + '.join(parts) or 'contour only'}, ≥ {self.floor} px"

    def instances(
        self,
        mask: np.ndarray,
        particle: np.ndarray,
        contour: int,
        min_seed_area: int = MIN_SEED_AREA,
    ) -> np.ndarray:
        from napari_diffrendergan.analysis.particles import SPLIT_DISTANCE, instances_from_mask

        return instances_from_mask(
            mask,
            contour,
            self.distance is not None,
            min_area=self.floor,
            split_distance=self.distance or SPLIT_DISTANCE,
            particle_probability=particle,
            core_threshold=self.core,
            min_seed_area=min_seed_area,
        )


# every splitting rule the selection compares
RULES = [
    Rule(core, distance, floor)
    for core in (None, *CORE_THRESHOLDS)
    for distance in (None, *SPLIT_DISTANCES)
    for floor in MIN_AREAS
]


def held_out_images(
    renderer, first: int, patches_folder: Path, n_background: int, seed: int, limit=None
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(image, truth) of ``SELECTION_PAIRS`` synthetic pairs from index ``first`` on
    (constellations the training never saw) and of the real background patches the dataset left
    out (at most ``limit``; truth empty, so every particle found there is false)."""
    from napari_diffrendergan.data.patches import PatchSet
    from napari_diffrendergan.gan.synthesis import background_choice

    held_out = []
    for index in range(first, first + SELECTION_PAIRS):
        pair = renderer.render(index)
        held_out.append((pair.image, pair.instances))
    patches = PatchSet.open(patches_folder)
    listed, used = background_choice(patches.folder, n_background, seed)
    for k in sorted(set(range(len(listed))) - set(used))[:limit]:
        image = patches.read(listed[k]) / 255
        held_out.append((image, np.zeros(image.shape, np.int32)))
    return held_out


def predicted(segmenter, images) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(truth, predicted mask, particle probability) for each (image, truth), as
    :func:`pooled_scores` takes them."""
    found = [(truth, segmenter.predict_probabilities(image)) for image, truth in images]
    return [(truth, p.mask, p.particle) for truth, p in found]


def pooled_scores(
    pairs, contour: int, rule: Rule, truth_kind: str, min_seed_area: int = MIN_SEED_AREA
) -> dict:
    """Counts (tp, fp, fn, split, merged, missed, pieces, false: see ``ImageScores``), AP50 and
    mean Dice pooled over (truth, predicted mask, particle probability) triples for one
    splitting ``rule`` (dips split between cores of ≥ ``min_seed_area`` px)."""
    from napari_diffrendergan.analysis.evaluation import score_image

    scores = [
        score_image(
            truth,
            rule.instances(mask, particle, contour, min_seed_area),
            "",
            truth_kind,
            "instances",
        )
        for truth, mask, particle in pairs
    ]
    total = {k: sum(getattr(x, k) for x in scores) for k in ("tp", "fp", "fn", "split", "merged")}
    return total | {
        "missed": sum(x.missed for x in scores),
        "pieces": sum(x.pieces for x in scores),
        "false": sum(x.false_positive for x in scores),
        "ap50": total["tp"] / max(1, total["tp"] + total["fp"] + total["fn"]),
        "dsc": float(np.mean([x.dsc for x in scores])),
    }


def manual_fragments(manual: np.ndarray, floor: int) -> int:
    """How many manual particles are smaller than ``floor`` px (mostly single pixels the
    separation lines cut off): no splitting rule keeps them."""
    from napari_diffrendergan.analysis.evaluation import to_instances

    return int((np.bincount(to_instances(manual, "binary").ravel())[1:] < floor).sum())


def commit() -> str:
    """The code's commit (with ``+dirty`` when the working tree differs from it)."""
    root = Path(__file__).resolve().parents[1]

    def git(*args) -> str:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else ""

    head = git("rev-parse", "--short=12", "HEAD") or "unknown"
    return head + ("+dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


class Experiment:
    def __init__(
        self,
        out: Path,
        data: Path,
        settings: dict,
        arms: tuple[str, ...] = tuple(ARMS),
        keep_stages: bool = False,
        bright_report: Path | None = None,
    ):
        self.out, self.data, self.settings = out, data, LATER_SETTINGS | settings
        self.keep_stages, self.bright_report = keep_stages, bright_report
        self.earlier = {}  # rows of earlier runs by model key (--earlier-report)
        ids = sorted(p.stem for p in (data / "images").glob("*.tif"))
        self.train_ids, self.validation_ids = split(ids, seed=settings["seed"])
        self.commit = commit()
        self.arms = [ARMS[name] for name in arms]
        # the baselines take the hand-set arm's instance rule when it runs (as in the runs
        # before the calibrated arm, whose outputs --keep-stages reuses), else the calibrated's
        self.baseline_arm = ARMS["handset"] if ARMS["handset"] in self.arms else self.arms[0]
        self.stages = [name for name, _ in self.plan()]
        self.models = [m for arm in self.arms for m in self.arm_models(arm)] + self.baselines()

    # --- helpers ---------------------------------------------------------------------------

    def baselines(self) -> list[str]:
        """The real-trained model's name, unless ``--real-baseline no`` left it out."""
        return ["real"] if self.settings["real_baseline"] else []

    def image(self, image_id: str) -> np.ndarray:
        """Scan (float32 in [0, 1], inverted with ``--invert``), data bar removed; no mask."""
        return read_image(image_id, self.data, self.settings["invert"])

    def scan(self, image_id: str) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`image` and its manual mask (bool), data bar removed."""
        return read_scan(image_id, self.data, self.settings["invert"])

    def arm_models(self, arm: Arm) -> list[str]:
        return [arm.model] + ([arm.untrained] if self.settings["ablation"] else [])

    def report_name(self, name: str) -> str:
        """The key of model ``name`` (a folder name, maybe ``_seedN``) in report.json."""
        base, seed = (name.split("_seed") + [""])[:2]
        keys = {arm.model: arm.report for arm in ARMS.values()}
        keys |= {a.untrained: a.report.replace("synthetic", "untrained") for a in ARMS.values()}
        return keys.get(base, base) + (f"_seed{seed}" if seed else "")

    def dataset(self, which: str) -> Path:
        """The nnU-Net dataset model ``which`` trains on."""
        for arm in ARMS.values():
            camel = "".join(part.title() for part in which.split("_"))
            if which == arm.model:
                return (
                    self.out / arm.stage("synthetic") / f"Dataset{arm.dataset_id:03d}_TiO2{camel}"
                )
            if which == arm.untrained:
                return self.out / arm.untrained / f"Dataset{arm.dataset_id:03d}_TiO2{camel}"
        return self.out / "real" / "Dataset002_TiO2Real"

    def calibration_report(self) -> dict:
        from napari_diffrendergan.io import read_json

        return read_json(self.out / "calibration" / "report.json", "calibration report")

    def marker(self, stage: str) -> Path:
        return self.out / "stages" / f"{stage}.json"

    def stage(self, name: str, work) -> None:
        """Run a stage unless it is done; refuse one that another commit made."""
        from napari_diffrendergan.io import read_json, write_json_atomic

        marker = self.marker(name)
        if marker.is_file():
            done = read_json(marker, "stage marker")
            if done["commit"] != self.commit and not self.keep_stages:
                sys.exit(
                    f"stage {name!r} in {self.out} was made by commit {done['commit']}, the code "
                    f"is now {self.commit}: run again with --redo {name} (it and the stages that "
                    "use it are made anew), keep it with --keep-stages, or choose another --out"
                )
            by = "" if done["commit"] == self.commit else f" by commit {done['commit']}"
            print(f"== {name}: done{by} ({done['seconds'] / 60:.1f} min)", flush=True)
            return
        print(f"== {name}", flush=True)
        started = time.perf_counter()
        work()
        seconds = time.perf_counter() - started
        write_json_atomic(marker, {"commit": self.commit, "seconds": seconds})
        print(f"   {name}: {seconds / 60:.1f} min", flush=True)

    def plan(self) -> list[tuple[str, object]]:
        """The stages of the arms in play, in order, each with its work."""
        stages = [("patches", self.patches), ("calibration", self.calibration)]
        if self.baselines():
            stages += [("real", self.real), ("nnunet_real", partial(self.nnunet, ["real"]))]
        for arm in self.arms:
            stages += [
                (arm.stage("gan"), partial(self.gan, arm)),
                (arm.stage("synthetic"), partial(self.synthetic, arm)),
                (arm.stage("nnunet"), partial(self.nnunet, self.arm_models(arm))),
                (arm.stage("predict"), partial(self.predict_arm, arm)),
            ]
        return stages + [("predict_baselines", self.predict_baselines)]

    def inputs(self) -> dict[str, list[str]]:
        """The stages each stage reads the outputs of."""
        uses = {"patches": [], "calibration": [], "real": [], "nnunet_real": ["real"]}
        for arm in ARMS.values():
            prior = ["calibration"] if arm.name == "calibrated" else []
            uses[arm.stage("gan")] = ["patches", *prior]
            uses[arm.stage("synthetic")] = ["patches", arm.stage("gan")]
            uses[arm.stage("nnunet")] = [arm.stage("synthetic")]
            uses[arm.stage("predict")] = [arm.stage("nnunet"), *prior]
        uses["predict_baselines"] = [
            "nnunet_real",
            "calibration",
            self.baseline_arm.stage("predict"),
        ]
        return uses

    def outputs(self, name: str) -> list[str]:
        """What stage ``name`` writes, relative to the experiment folder."""

        def models(names):
            return [n for which in names for n in self.seeded(which)]

        fixed = {
            "patches": ["patches"],
            "calibration": ["calibration"],
            "real": ["real"],
            "nnunet_real": [f"model_{n}" for n in models(["real"])],
            "predict_baselines": [f"predictions/{n}" for n in models(["real"])]
            + ["predictions/classic", "predictions/baselines.json"],
        }
        if name in fixed:
            return fixed[name]
        arm, kind = next(
            (arm, kind)
            for arm in ARMS.values()
            for kind in ("gan", "synthetic", "nnunet", "predict")
            if name == arm.stage(kind)
        )
        both = models([arm.model, arm.untrained])
        return {
            "gan": [arm.stage("gan")],
            "synthetic": [arm.stage("synthetic"), arm.untrained],
            "nnunet": [f"model_{n}" for n in both],
            "predict": [f"predictions/{n}" for n in both] + [f"splitting{arm.suffix}.json"],
        }[kind]

    def redo(self, first: str) -> None:
        """Forget ``first`` and every stage that uses it, directly or not (outputs and
        markers)."""
        uses, forget = self.inputs(), {first}
        while True:
            more = {name for name, read in uses.items() if forget & set(read)} - forget
            if not more:
                break
            forget |= more
        for name in STAGES:
            if name not in forget:
                continue
            for item in self.outputs(name):
                path = self.out / item
                if path.is_dir():
                    shutil.rmtree(path)
                elif path.exists():
                    path.unlink()
            self.marker(name).unlink(missing_ok=True)
            print(f"   {name}: made anew", flush=True)

    def segmenter(self, name: str):
        """The trained model ``name``, predicting with the experiment's device and flips."""
        from napari_diffrendergan.segment.predict import Segmenter

        return Segmenter(
            self.out / f"model_{name}",
            device=self.settings["device"],
            mirroring=self.settings["mirroring"],
        )

    def seeded(self, which: str) -> list[str]:
        return (
            [which]
            if self.settings["seeds"] == 1
            else [f"{which}_seed{s}" for s in range(self.settings["seeds"])]
        )

    # --- stages ----------------------------------------------------------------------------

    def patches(self) -> None:
        """Particle patches for the GAN (a seeded choice spread over all training scans) and
        every background patch (stride 64, up to 75 % overlap), all without masks."""
        from napari_diffrendergan.data.patches import PatchSet, cut_patches

        particle, background = [], []
        for image_id in self.train_ids:
            image = self.image(image_id)
            for role, bucket, stride, overlap in (
                ("particle", particle, 128, 0.5),
                ("background", background, 64, 0.75),  # overlapping, as in the paper
            ):
                found, pixels, _ = cut_patches(
                    image, f"{image_id}.tif", stride=stride, max_overlap=overlap
                )
                bucket += [(p, x) for p, x in zip(found, pixels, strict=True) if p.role == role]
        chosen = np.random.default_rng(self.settings["seed"]).permutation(len(particle))[:PATCHES]
        kept = [particle[i] for i in sorted(chosen)] + background
        PatchSet.save(
            self.out / "patches",
            [p for p, _ in kept],
            [x for _, x in kept],
            PIXEL_SIZE_NM,
            {
                "source": "tio2-sem training scans"
                + (", inverted" if self.settings["invert"] else "")
                + " (masks not used)"
            },
        )

    def calibration(self) -> None:
        """The scene prior of the training scans as ``diffrendergan calibrate --like LIKE
        --out`` makes it: images only (data bar left out), the pixel size
        their TIFF metadata records. ``placement.dense_fraction`` (half the scenes one
        agglomerate), which the ``tio2-sem`` preset took from the training scans' masks, goes
        back to its default."""

        from napari_diffrendergan.analysis.calibration import calibrated_config
        from napari_diffrendergan.analysis.matching import measure_prior
        from napari_diffrendergan.cli import calibration_lines, valid_json
        from napari_diffrendergan.config import preset
        from napari_diffrendergan.io import image_pixel_size, write_json_atomic, write_text_atomic

        files = [self.data / "images" / f"{image_id}.tif" for image_id in self.train_ids]
        sizes = {image_pixel_size(path)[0] for path in files}
        if len(sizes) != 1 or None in sizes:
            sys.exit(
                f"the training scans' metadata give no one pixel size ({sizes}): nothing to do"
            )
        pixel_size = sizes.pop()
        scans = [(image_id, self.image(image_id)) for image_id in self.train_ids]
        like = self.calibration_like()
        reset = preset(self.settings["like"]).placement.dense_fraction != (
            like.placement.dense_fraction
        )
        with progress_bar("calibrate") as monitor:
            report = measure_prior(scans, pixel_size, like, monitor)
        config = calibrated_config(report, like, name="calibrated")
        if reset:
            config.description += (
                f" Placement without {like.name}'s dense fraction (read off the training masks)."
            )
        lines = calibration_lines(report)
        print("\n".join(f"   {line}" for line in lines), flush=True)
        folder = self.out / "calibration"
        write_json_atomic(folder / "report.json", valid_json(report))
        write_text_atomic(folder / "calibrate.txt", "\n".join(lines) + "\n")
        config.save(folder / "calibrated.json")

    def calibration_like(self):
        """The ``--like`` preset of the calibration, without the dense fraction its placement
        took from the training masks (back to the default)."""
        from dataclasses import replace

        from napari_diffrendergan.config import PlacementConfig, preset

        like = preset(self.settings["like"])
        default = PlacementConfig().dense_fraction
        like.placement = replace(like.placement, dense_fraction=default)
        return like

    def arm_preset(self, arm: Arm):
        """The preset arm ``arm``'s GAN starts from."""
        from napari_diffrendergan.config import MaterialConfig, preset

        if arm.name == "handset":
            return preset("tio2-sem")
        return MaterialConfig.load(self.out / "calibration" / "calibrated.json")

    def gan(self, arm: Arm) -> None:
        from napari_diffrendergan.gan.run import GanRun, TrainingSettings
        from napari_diffrendergan.gan.training import train_iter

        run, epochs = GanRun(self.out / arm.stage("gan")), self.settings["gan_epochs"]
        if not run.exists:
            config = self.arm_preset(arm)
            config.scene.spp = self.settings["gan_spp"]
            settings = TrainingSettings(
                epochs=epochs, seed=self.settings["seed"], device=self.settings["device"]
            )
            run = GanRun.create(run.folder, self.out / "patches", config, settings)
        with progress_bar(f"GAN ({arm.name})") as monitor:
            for event in train_iter(run, epochs=epochs, monitor=monitor):
                if event.kind in ("epoch", "stopped"):
                    print(f"   {event.message}", flush=True)

    def synthetic(self, arm: Arm) -> None:
        from napari_diffrendergan.gan.synthesis import generate

        epochs = {arm.model: "best"} | ({arm.untrained: 0} if self.settings["ablation"] else {})
        for which, epoch in epochs.items():
            with progress_bar(f"pairs ({which})") as monitor:
                summary = generate(
                    self.out / arm.stage("gan"),
                    self.dataset(which),
                    self.settings["pairs"],
                    epoch=epoch,
                    seed=self.settings["seed"],
                    spp=self.settings["spp"],
                    background_patches=self.out / "patches",
                    n_background=self.settings["background"],
                    workers=self.settings["pair_workers"],
                    device=self.settings["device"],
                    monitor=monitor,
                )
            print(f"   {which}: {summary['rejected']} rejected by the contrast filter", flush=True)

    def real(self) -> None:
        from skimage.measure import label

        from napari_diffrendergan.config import preset
        from napari_diffrendergan.data.dataset import NnunetDataset
        from napari_diffrendergan.render.labels import semantic_mask

        contour = preset("tio2-sem").contour_thickness  # the synthetic masks' width
        images, masks = [], []
        for image_id in self.train_ids:
            image, manual = self.scan(image_id)
            images.append(image)
            masks.append(semantic_mask(label(manual, connectivity=1), contour))
        NnunetDataset(self.dataset("real")).write(
            images, masks, contour, names=self.train_ids, pixel_size_nm=PIXEL_SIZE_NM
        )

    def nnunet(self, models: list[str]) -> None:
        from napari_diffrendergan.segment.model import ModelFolder
        from napari_diffrendergan.segment.training import train_model

        for which in models:
            for seed, name in enumerate(self.seeded(which)):
                model = ModelFolder(self.out / f"model_{name}")
                if model.is_complete:
                    continue
                with progress_bar(f"nnU-Net ({name})") as monitor:
                    train_model(
                        self.dataset(which),
                        model.folder,
                        config=self.settings["seg_config"],
                        iterations=self.settings["seg_iterations"],
                        device=self.settings["device"],
                        resume=model.workspace.is_dir(),
                        seed=seed,
                        monitor=monitor,
                    )

    def seed_area(self, arm: Arm, contour_thickness: int) -> tuple[int, str]:
        """The smallest core a dip splits between for arm ``arm``, and how it was set."""
        from napari_diffrendergan.analysis.particles import seed_area_for

        if arm.name == "handset":
            return MIN_SEED_AREA, "the package default, set on the training scans"
        report = self.calibration_report()
        p10 = report["estimates"]["diameter"]["p10"]["value"] / report["pixel_size_nm"]
        area = seed_area_for(p10, contour_thickness)
        return area, (
            f"the core inside the {contour_thickness} px contour of a particle of the calibrated "
            f"10th size percentile ({p10:.1f} px)"
        )

    def select_splitting(self, arm: Arm) -> dict:
        """Choose how touching particles are split (contour class only, at particle-probability
        dips, and/or by a watershed with a peak distance: :data:`RULES`) and the smallest
        particle kept, by AP50 pooled over the arm's own held-out synthetic pairs and the real
        background patches its dataset left out (every particle found on those is false): no
        real annotation involved (the seed area for dips: :meth:`seed_area`)."""
        from napari_diffrendergan.gan.run import load_generator
        from napari_diffrendergan.gan.synthesis import PairRenderer
        from napari_diffrendergan.io import read_json, write_json_atomic

        chosen_file = self.out / f"splitting{arm.suffix}.json"
        if chosen_file.is_file():
            return read_json(chosen_file)
        renderer = PairRenderer(
            load_generator(self.out / arm.stage("gan")),
            seed=self.settings["seed"],
            spp=self.settings["spp"],
            device=self.settings["device"],
        )
        segmenter = self.segmenter(self.seeded(arm.model)[0])
        seed_area, seed_rule = self.seed_area(arm, segmenter.contour_thickness)
        held_out = predicted(
            segmenter,
            held_out_images(
                renderer,
                self.settings["pairs"],  # indices after the training pairs: unseen constellations
                self.out / "patches",
                self.settings["background"],
                self.settings["seed"],
            ),
        )
        candidates = {}
        for rule in RULES:
            total = pooled_scores(
                held_out, segmenter.contour_thickness, rule, "instances", seed_area
            )
            key = rule.name
            candidates[key] = {
                "core_threshold": rule.core,
                "watershed": rule.distance is not None,
                "split_distance": rule.distance,
                "min_area": rule.floor,
                "ap50": total["ap50"],
                "found": total["tp"] + total["fp"],
                "true": total["tp"] + total["fn"],
            }
            print(f"   {key}: AP50 {candidates[key]['ap50']:.3f}", flush=True)
        best = max(candidates, key=lambda k: candidates[k]["ap50"])
        chosen = {
            "chosen": best,
            **candidates[best],
            "min_seed_area": seed_area,
            "min_seed_area_rule": seed_rule,
            "pairs": SELECTION_PAIRS,
            "background_patches": len(held_out) - SELECTION_PAIRS,
            "all": candidates,
        }
        write_json_atomic(chosen_file, chosen)
        return chosen

    def rule(self, arm: Arm) -> dict:
        """The instance rule arm ``arm`` chose, as ``segment_image`` takes it."""
        from napari_diffrendergan.analysis.particles import SPLIT_DISTANCE

        splitting = self.select_splitting(arm)
        return {
            "core_threshold": splitting["core_threshold"],
            "watershed": splitting["watershed"],
            "split_distance": splitting["split_distance"] or SPLIT_DISTANCE,
            "min_area": splitting["min_area"],
            "min_seed_area": splitting["min_seed_area"],
        }

    def predict_arm(self, arm: Arm) -> None:
        """The arm's models on the validation scans, with the rule it chose."""
        names = [n for which in self.arm_models(arm) for n in self.seeded(which)]
        self.predict(names, self.rule(arm))

    def predict_baselines(self) -> None:
        """The real-trained model(s), if any, and the classic route (particles of the calibrated
        polarity) on the validation scans, with the rule of :attr:`baseline_arm`."""
        from napari_diffrendergan.io import write_json_atomic

        polarity = self.calibration_report()["polarity"]
        rule = self.rule(self.baseline_arm)
        write_json_atomic(
            self.out / "predictions" / "baselines.json",
            {"rule_from": self.baseline_arm.name, "rule": rule, "classic_polarity": polarity},
        )
        real = [n for which in self.baselines() for n in self.seeded(which)]
        self.predict(real + ["classic"], rule, polarity)

    def predict(self, names: list[str], rule: dict, polarity: str = "bright") -> None:
        """Models ``names`` (``classic``: Otsu + watershed of ``polarity`` particles) segment
        the validation scans with instance ``rule``; scores against the manual masks."""
        from napari_diffrendergan.analysis.evaluation import ranked_matches, score_image
        from napari_diffrendergan.analysis.particles import classic_instances, table_rows
        from napari_diffrendergan.io import write_csv, write_json_atomic, write_tiff
        from napari_diffrendergan.segment.predict import segment_image

        for name in names:
            folder = self.out / "predictions" / name
            if (folder / "scores.json").is_file():
                continue
            segmenter = None if name == "classic" else self.segmenter(name)
            scores = []
            for image_id in self.validation_ids:
                image, manual = self.scan(image_id)
                started = time.perf_counter()
                ranked = None
                if segmenter is None:
                    instances = classic_instances(
                        image, rule["split_distance"], rule["min_area"], polarity
                    )
                else:
                    result = segment_image(segmenter, image, pixel_size_nm=PIXEL_SIZE_NM, **rule)
                    instances = result.instances
                    write_csv(folder / f"{image_id}_particles.csv", table_rows(result.table))
                    labels, confidence = result.table["label"], result.table["confidence"]
                    scored, matched, _ = ranked_matches(
                        manual,
                        instances,
                        dict(zip(labels.tolist(), confidence.tolist(), strict=True)),
                        "binary",
                        image_id,
                    )
                    ranked = {"confidence": scored.tolist(), "matched": matched.tolist()}
                seconds = time.perf_counter() - started
                path = folder / f"{image_id}_instances.tif"
                write_tiff(path, instances, pixel_size_nm=PIXEL_SIZE_NM)
                score = score_image(manual, instances, image_id, "binary", "instances")
                scores.append(
                    {
                        **score.__dict__,
                        "fragments": manual_fragments(manual, rule["min_area"]),
                        "seconds": seconds,
                        "ranked": ranked,
                    }
                )
                print(
                    f"   {name:12s} {image_id}: Dice {score.dsc:.3f}  AP50 {score.ap50:.3f}  "
                    f"PQ {score.pq:.3f}  {score.n_pred} vs {score.n_true} particles "
                    f"({score.merged} merges, {score.split} split, {score.missed} missed, "
                    f"{score.pieces} pieces, {score.false_positive} FP)",
                    flush=True,
                )
            write_json_atomic(folder / "scores.json", scores)

    def run(self, docs: Path | None) -> None:
        from napari_diffrendergan.io import write_json_atomic
        from report_tio2_sem import write_report

        write_json_atomic(
            self.out / "experiment.json",
            {
                **self.settings,
                "commit": self.commit,
                "train_ids": self.train_ids,
                "validation_ids": self.validation_ids,
            },
        )
        print(
            f"commit {self.commit}; arms {', '.join(a.name for a in self.arms)}; "
            f"{len(self.train_ids)} training / {len(self.validation_ids)} validation scans: "
            f"{', '.join(self.validation_ids)}",
            flush=True,
        )
        for name, work in self.plan():
            self.stage(name, work)
        report = write_report(self, docs)
        print(f"report: {report}", flush=True)


def _yes(text: str) -> bool:
    return text.lower() in ("1", "true", "yes", "on")


def arms_given(text: str | None, invert: bool) -> tuple[str, ...]:
    """The arms ``--arms`` names (default: both; with ``--invert`` the calibrated one)."""
    if text is None:
        return ("calibrated",) if invert else tuple(ARMS)
    arms = tuple(dict.fromkeys(a.strip() for a in text.split(",") if a.strip()))
    unknown = [a for a in arms if a not in ARMS]
    if unknown or not arms:
        sys.exit(f"--arms takes a comma-separated list of {', '.join(ARMS)}, got {text!r}")
    if invert and "handset" in arms:
        sys.exit(
            "--invert with the handset arm: the hand-set preset tio2-sem is bright and a GAN run "
            "refuses the inverted scans' dark patches; leave --arms out (calibrated only)"
        )
    return arms


def main() -> None:
    from napari_diffrendergan.config import PRESETS
    from napari_diffrendergan.segment.predict import MIRRORING

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="experiment folder (resumable)")
    parser.add_argument("--data", default=str(SHARED))
    parser.add_argument("--budget", choices=("auto", *BUDGETS), default="auto")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--arms",
        help="synthetic-only arms to run, comma-separated: calibrated (scene prior measured on "
        "the unannotated scans), handset (preset tio2-sem); default both, with --invert "
        "calibrated",
    )
    parser.add_argument(
        "--invert",
        action="store_true",
        help="dark particles: every scan inverted (1 - scan), masks unchanged (its own --out)",
    )
    parser.add_argument(
        "--like",
        choices=tuple(PRESETS),
        default=LATER_SETTINGS["like"],
        help="lighting, learning limits and placement of the calibrated preset "
        "(calibrate --like; default %(default)s: these are SEM scans)",
    )
    parser.add_argument(
        "--bright-report",
        help="with --invert: the report.json of the bright run, to compare Dice with",
    )
    parser.add_argument(
        "--real-baseline",
        type=_yes,
        default=LATER_SETTINGS["real_baseline"],
        help="train the real-trained nnU-Net on the manual masks as a baseline (default yes; "
        "the classic route is always scored)",
    )
    parser.add_argument(
        "--earlier-report",
        help="an earlier bright run's report.json (same validation scans) whose rows this run "
        "leaves out: the hand-set arm's (row and FID curve) without --arms handset, the "
        "real-trained one with --real-baseline no",
    )
    parser.add_argument("--docs", help="also write the report and figures into this docs folder")
    parser.add_argument("--redo", choices=STAGES, help="make this stage and all that use it anew")
    parser.add_argument(
        "--keep-stages",
        action="store_true",
        help="keep stages another commit made (the report names each stage's commit)",
    )
    for name, value in BUDGETS["cpu"].items():
        kind = type(value) if not isinstance(value, bool) else _yes
        choices = tuple(MIRRORING) if name == "mirroring" else None
        parser.add_argument(f"--{name.replace('_', '-')}", type=kind, choices=choices, default=None)
    args = parser.parse_args()
    data, out = Path(args.data), Path(args.out)
    if not (data / "images").is_dir() or not (data / "masks").is_dir():
        sys.exit(f"real TiO2 SEM data not found at {data} (images/ and masks/): nothing to do")
    arms = arms_given(args.arms, args.invert)
    bright = Path(args.bright_report) if args.bright_report else None
    if bright is not None and not (args.invert and bright.is_file()):
        sys.exit(f"--bright-report {bright}: give the bright run's report.json, with --invert")
    earlier = Path(args.earlier_report) if args.earlier_report else None
    left_out = [
        row
        for row, run in ((ARMS["handset"].report, "handset" in arms), ("real", args.real_baseline))
        if not run
    ]
    if earlier is not None and (args.invert or not left_out or not earlier.is_file()):
        sys.exit(
            f"--earlier-report {earlier}: give an earlier bright run's report.json, with --arms "
            "leaving the handset arm out or --real-baseline no"
        )
    from napari_diffrendergan.backend import torch_device

    budget = args.budget
    if budget == "auto":
        budget = "gpu" if torch_device(args.device) == "cuda" else "cpu"
    settings = {
        "budget": budget,
        "seed": args.seed,
        "device": args.device,
        "invert": args.invert,
        "like": args.like,
        "real_baseline": args.real_baseline,
    }
    for name, value in BUDGETS[budget].items():
        settings[name] = value if getattr(args, name) is None else getattr(args, name)
    out.mkdir(parents=True, exist_ok=True)
    recorded = out / "experiment.json"
    if recorded.is_file():
        before = LATER_SETTINGS | json.loads(recorded.read_text())
        changed = {k: (before.get(k), v) for k, v in settings.items() if before.get(k) != v}
        if changed:
            sys.exit(f"{out} holds an experiment with other settings {changed}: use another --out")
    experiment = Experiment(out, data, settings, arms, args.keep_stages, bright)
    if earlier is not None:
        from report_tio2_sem import earlier_rows

        taken = earlier_rows(earlier, left_out)
        if taken["validation_ids"] != experiment.validation_ids:
            sys.exit(f"--earlier-report {earlier}: a run on other validation scans")
        if missing := set(left_out) - set(taken["rows"]):
            sys.exit(f"--earlier-report {earlier}: it holds no {', '.join(sorted(missing))} row")
        experiment.earlier = taken["rows"]
    if args.redo:
        experiment.redo(args.redo)
    experiment.run(Path(args.docs) if args.docs else None)


if __name__ == "__main__":
    main()
