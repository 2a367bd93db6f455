"""The paper's Table 1 for real TiO2 SEM scans, on a CPU budget: nnU-Net trained only on
DiffRenderGAN data vs nnU-Net trained on manual annotations, both scored on held-out scans.

Stages (each resumable: run the same command again to continue where it stopped):

1. split     the 32 scans of ../shared/data/tio2-sem into 24 training and 8 validation scans
             (fixed seed); the validation scans are used only for the final scores.
2. patches   256² patches from the training scans, without their masks: 124 particle patches
             (≥ 3 whole particles by Otsu threshold) for the GAN, and background patches.
3. gan       DiffRenderGAN, preset tio2-sem, FID after every epoch, best epoch by the paper's rule.
4. synthetic 1000 synthetic pairs from the best epoch + 200 real background patches.
5. real      the baseline's dataset: the 24 training scans with their manual masks (3-class).
6. nnunet    the small nnU-Net on each dataset, with the same number of iterations.
7. predict   how touching particles are split (contour class only, or + watershed at a peak
             distance) and the smallest particle kept are chosen by AP50 on 24 held-out
             synthetic pairs + the background patches the dataset left out; both models then
             segment the 8 validation scans (data bar removed); Dice, AP50, PQ and particle
             counts against the manual masks (4-connected instances).
8. report    ``report.md`` with the table, FID per epoch, size distributions and TP/FP/FN
             overlays; ``--docs DIR`` also copies it there.

Budgets (``--budget``): ``cpu`` fits 2 hours on 2 cores; ``gpu`` trains the GAN for the paper's
50 epochs and nnU-Net's default network for longer; ``auto`` (default) picks ``gpu`` when
CUDA is present (or ``--device cuda``). Any budget value can be overridden by its option.

Run: ``.venv/bin/python benchmarks/tio2_sem.py --out DIR [--budget auto|cpu|gpu] [--docs docs]``
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from napari_diffrendergan.cli import progress_bar
from tio2_data import DATA_BAR_ROWS, PATCHES, PIXEL_SIZE_NM, SHARED, split

BUDGETS = {
    "cpu": {
        "gan_epochs": 4,
        "spp": 64,
        "pairs": 1000,
        "background": 200,
        "seg_config": "small",
        "seg_iterations": 1500,
    },
    "gpu": {
        "gan_epochs": 50,
        "spp": 64,
        "pairs": 1000,
        "background": 200,
        "seg_config": "default",
        "seg_iterations": 12500,
    },
}
MODELS = ("synthetic", "real")
SELECTION_PAIRS = 24
SPLIT_DISTANCES = (3, 6, 9, 12, 15)
MIN_AREAS = (4, 20, 40, 80)


class Experiment:
    def __init__(self, out: Path, data: Path, settings: dict):
        self.out, self.data, self.settings = out, data, settings
        ids = sorted(p.stem for p in (data / "images").glob("*.tif"))
        self.train_ids, self.validation_ids = split(ids, seed=settings["seed"])
        self.timings_file = out / "timings.json"
        self.timings = (
            json.loads(self.timings_file.read_text()) if self.timings_file.is_file() else {}
        )

    # --- helpers ---------------------------------------------------------------------------

    def scan(self, image_id: str) -> tuple[np.ndarray, np.ndarray]:
        """Scan (float32 in [0, 1]) and manual mask (bool), data bar removed."""
        import tifffile

        image = tifffile.imread(self.data / "images" / f"{image_id}.tif")
        mask = tifffile.imread(self.data / "masks" / f"{image_id}_m.tif")
        rows = image.shape[0] - DATA_BAR_ROWS
        return image[:rows].astype(np.float32) / 255, mask[:rows] > 0

    def timed(self, name: str, work) -> None:
        from napari_diffrendergan.io import write_json_atomic

        started = time.perf_counter()
        print(f"== {name}", flush=True)
        work()
        self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - started
        write_json_atomic(self.timings_file, self.timings)
        print(f"   {name}: {self.timings[name] / 60:.1f} min in all", flush=True)

    # --- stages ----------------------------------------------------------------------------

    def patches(self) -> None:
        """Particle patches for the GAN (a seeded choice spread over all training scans) and
        every background patch (stride 64, up to 75 % overlap), all without masks."""
        from napari_diffrendergan.data.patches import PatchSet, cut_patches

        folder = self.out / "patches"
        if (self.out / "patches.done").is_file():
            return
        shutil.rmtree(folder, ignore_errors=True)
        particle, background = [], []
        for image_id in self.train_ids:
            image, _ = self.scan(image_id)
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
            folder,
            [p for p, _ in kept],
            [x for _, x in kept],
            PIXEL_SIZE_NM,
            {"source": "tio2-sem training scans (masks not used)"},
        )
        (self.out / "patches.done").write_text(
            json.dumps({"particle": len(chosen), "background": len(background)})
        )

    def gan(self) -> None:
        from napari_diffrendergan.config import preset
        from napari_diffrendergan.gan.run import GanRun, TrainingSettings
        from napari_diffrendergan.gan.training import train_iter

        run, epochs = GanRun(self.out / "gan"), self.settings["gan_epochs"]
        if not run.exists:
            settings = TrainingSettings(
                epochs=epochs, seed=self.settings["seed"], device=self.settings["device"]
            )
            run = GanRun.create(run.folder, self.out / "patches", preset("tio2-sem"), settings)
        with progress_bar("GAN") as monitor:
            for event in train_iter(run, epochs=epochs, monitor=monitor):
                if event.kind == "epoch":
                    print(f"   epoch {event.epoch}: FID {event.metrics['fid']:.1f}", flush=True)

    def synthetic(self) -> None:
        from napari_diffrendergan.data.synthesis import generate

        with progress_bar("synthetic pairs") as monitor:
            summary = generate(
                self.out / "gan",
                self.out / "synthetic" / "Dataset001_TiO2Synthetic",
                self.settings["pairs"],
                seed=self.settings["seed"],
                spp=self.settings["spp"],
                background_patches=self.out / "patches",
                n_background=self.settings["background"],
                device=self.settings["device"],
                monitor=monitor,
            )
        print(f"   {summary['rejected']} rejected by the contrast filter", flush=True)

    def real(self) -> None:
        from skimage.measure import label

        from napari_diffrendergan.data.dataset import NnunetDataset
        from napari_diffrendergan.render.labels import semantic_mask

        images, masks = [], []
        for image_id in self.train_ids:
            image, manual = self.scan(image_id)
            images.append(image)
            masks.append(semantic_mask(label(manual, connectivity=1), 1))
        NnunetDataset(self.out / "real" / "Dataset002_TiO2Real").write(
            images, masks, names=self.train_ids
        )

    def nnunet(self, which: str) -> None:
        from napari_diffrendergan.segment.model import ModelFolder
        from napari_diffrendergan.segment.training import train_model

        dataset = next((self.out / which).glob("Dataset*"))
        model = ModelFolder(self.out / f"model_{which}")
        if model.is_complete:
            return
        with progress_bar(f"nnU-Net ({which})") as monitor:
            train_model(
                dataset,
                model.folder,
                config=self.settings["seg_config"],
                iterations=self.settings["seg_iterations"],
                device=self.settings["device"],
                resume=model.workspace.is_dir(),
                monitor=monitor,
            )

    def select_splitting(self) -> dict:
        """Choose how touching particles are split (contour class only, or + watershed with a
        peak distance) and the smallest particle kept, by AP50 pooled over held-out synthetic
        pairs and the real background patches the dataset left out (every particle found on
        those is false): no real annotation involved."""
        from napari_diffrendergan.analysis.evaluation import score_image
        from napari_diffrendergan.analysis.particles import instances_from_mask
        from napari_diffrendergan.data.patches import PatchSet
        from napari_diffrendergan.data.synthesis import PairRenderer, background_choice
        from napari_diffrendergan.gan.run import load_generator
        from napari_diffrendergan.io import write_json_atomic
        from napari_diffrendergan.segment.predict import Segmenter

        chosen_file = self.out / "splitting.json"
        if chosen_file.is_file():
            return json.loads(chosen_file.read_text())
        renderer = PairRenderer(
            load_generator(self.out / "gan"),
            seed=self.settings["seed"],
            spp=self.settings["spp"],
            device=self.settings["device"],
        )
        segmenter = Segmenter(self.out / "model_synthetic", device=self.settings["device"])
        first = self.settings["pairs"]  # indices after the training pairs: unseen constellations
        held_out = []
        for index in range(first, first + SELECTION_PAIRS):
            pair = renderer.render(index)
            held_out.append((pair.instances, segmenter.predict(pair.image)))
        patches = PatchSet.open(self.out / "patches")
        listed, used = background_choice(
            patches.folder, self.settings["background"], self.settings["seed"]
        )
        unused = sorted(set(range(len(listed))) - set(used))
        for k in unused:
            image = patches.read(listed[k]) / 255
            held_out.append((np.zeros(image.shape, np.int32), segmenter.predict(image)))
        candidates = {}
        for distance in (None, *SPLIT_DISTANCES):
            for floor in MIN_AREAS:
                scores = [
                    score_image(
                        truth,
                        instances_from_mask(
                            mask,
                            1,
                            distance is not None,
                            min_area=floor,
                            split_distance=distance or 9,
                        ),
                        "",
                        "instances",
                        "instances",
                    )
                    for truth, mask in held_out
                ]
                tp, fp, fn = (sum(getattr(x, k) for x in scores) for k in ("tp", "fp", "fn"))
                key = "contour only" if distance is None else f"watershed {distance} px"
                key += f", ≥ {floor} px"
                candidates[key] = {
                    "watershed": distance is not None,
                    "split_distance": distance,
                    "min_area": floor,
                    "ap50": tp / max(1, tp + fp + fn),
                    "found": tp + fp,
                    "true": tp + fn,
                }
                print(f"   {key}: AP50 {candidates[key]['ap50']:.3f}", flush=True)
        best = max(candidates, key=lambda k: candidates[k]["ap50"])
        chosen = {
            "chosen": best,
            **candidates[best],
            "pairs": SELECTION_PAIRS,
            "background_patches": len(unused),
            "all": candidates,
        }
        write_json_atomic(chosen_file, chosen)
        return chosen

    def predict(self) -> None:
        from napari_diffrendergan.analysis.evaluation import score_image
        from napari_diffrendergan.analysis.particles import instances_from_mask, table_rows
        from napari_diffrendergan.io import write_csv, write_json_atomic, write_tiff
        from napari_diffrendergan.segment.predict import Segmenter, segment_image

        splitting = self.select_splitting()
        for which in MODELS:
            folder = self.out / "predictions" / which
            scores_file = folder / "scores.json"
            if scores_file.is_file():
                continue
            segmenter = Segmenter(self.out / f"model_{which}", device=self.settings["device"])
            scores = []
            for image_id in self.validation_ids:
                image, manual = self.scan(image_id)
                started = time.perf_counter()
                result = segment_image(
                    segmenter,
                    image,
                    pixel_size_nm=PIXEL_SIZE_NM,
                    watershed=splitting["watershed"],
                    split_distance=splitting["split_distance"] or 9,
                    min_area=splitting["min_area"],
                )
                seconds = time.perf_counter() - started
                write_tiff(
                    folder / f"{image_id}_instances.tif",
                    result.instances,
                    pixel_size_nm=PIXEL_SIZE_NM,
                    model=str(self.out / f"model_{which}"),
                )
                write_csv(folder / f"{image_id}_particles.csv", table_rows(result.table))
                score = score_image(manual, result.instances, image_id, "binary", "instances")
                plain = score_image(
                    manual, instances_from_mask(result.mask, 1), image_id, "binary", "instances"
                )
                scores.append(
                    {
                        **score.__dict__,
                        "seconds": seconds,
                        "contour_only": {k: getattr(plain, k) for k in ("ap50", "pq", "n_pred")},
                    }
                )
                print(
                    f"   {which:9s} {image_id}: Dice {score.dsc:.3f}  AP50 {score.ap50:.3f}  "
                    f"PQ {score.pq:.3f}  {score.n_pred} vs {score.n_true} particles",
                    flush=True,
                )
            write_json_atomic(scores_file, scores)

    def report(self, docs: Path | None) -> None:
        from report_tio2_sem import write_report

        write_report(self, docs)

    def run(self, docs: Path | None) -> None:
        (self.out / "experiment.json").write_text(
            json.dumps(
                {
                    **self.settings,
                    "train_ids": self.train_ids,
                    "validation_ids": self.validation_ids,
                },
                indent=2,
            )
        )
        print(
            f"{len(self.train_ids)} training / {len(self.validation_ids)} validation scans; "
            f"validation: {', '.join(self.validation_ids)}",
            flush=True,
        )
        self.timed("patches", self.patches)
        self.timed("gan", self.gan)
        self.timed("synthetic", self.synthetic)
        self.timed("real", self.real)
        for which in MODELS:
            self.timed(f"nnunet_{which}", lambda which=which: self.nnunet(which))
        self.timed("predict", self.predict)
        self.report(docs)
        print(f"report: {self.out / 'report.md'}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="experiment folder (resumable)")
    parser.add_argument("--data", default=str(SHARED))
    parser.add_argument("--budget", choices=("auto", *BUDGETS), default="auto")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--docs", help="also write the report and figures into this docs folder")
    for name, value in BUDGETS["cpu"].items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=None)
    args = parser.parse_args()
    data, out = Path(args.data), Path(args.out)
    if not (data / "images").is_dir() or not (data / "masks").is_dir():
        sys.exit(f"real TiO2 SEM data not found at {data} (images/ and masks/): nothing to do")
    from napari_diffrendergan.backend import torch_device

    budget = args.budget
    if budget == "auto":
        budget = "gpu" if torch_device(args.device) == "cuda" else "cpu"
    settings = {"budget": budget, "seed": args.seed, "device": args.device}
    for name, value in BUDGETS[budget].items():
        settings[name] = value if getattr(args, name) is None else getattr(args, name)
    out.mkdir(parents=True, exist_ok=True)
    recorded = out / "experiment.json"
    if recorded.is_file():
        before = json.loads(recorded.read_text())
        changed = {k: (before.get(k), v) for k, v in settings.items() if before.get(k) != v}
        if changed:
            sys.exit(f"{out} holds an experiment with other settings {changed}: use another --out")
    Experiment(out, data, settings).run(Path(args.docs) if args.docs else None)


if __name__ == "__main__":
    main()
