"""Which contour width separates touching TiO2 particles best: a small proxy of the TiO2 SEM
experiment (about 15 min per width on 2 cores).

Per width: 300 pairs of the untrained generator (epoch 0) at spp 121 + 60 real background
patches, nnU-Net ``small`` for 400 iterations; every splitting rule of the experiment is scored
(AP50) on 24 held-out synthetic pairs + 60 unused background patches (the selection rule) and,
as a diagnosis only (never used to choose), on every 4th training scan against its manual mask.

Run: ``.venv/bin/python benchmarks/contour_width.py --out DIR --widths 1,2``
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from tio2_data import SHARED
from tio2_sem import BUDGETS, MIN_AREAS, SPLIT_DISTANCES, Experiment

PAIRS, ITERATIONS, HELD_OUT, BACKGROUND = 300, 400, 24, 60


def pooled(pairs, width: int, distance: int | None, floor: int, truth_kind: str) -> dict:
    """AP50 and the error breakdown pooled over (truth, predicted mask) pairs for one rule."""
    from napari_diffrendergan.analysis.evaluation import score_image
    from napari_diffrendergan.analysis.particles import instances_from_mask

    scores = [
        score_image(
            truth,
            instances_from_mask(mask, width, distance is not None, floor, distance or 9),
            "",
            truth_kind,
            "instances",
        )
        for truth, mask in pairs
    ]
    total = {k: sum(getattr(x, k) for x in scores) for k in ("tp", "fp", "fn", "split", "merged")}
    total |= {
        "missed": sum(x.missed for x in scores),
        "false": sum(x.false_positive for x in scores),
        "ap50": total["tp"] / max(1, total["tp"] + total["fp"] + total["fn"]),
        "dsc": float(np.mean([x.dsc for x in scores])),
    }
    return total


def main() -> None:
    from napari_diffrendergan.config import preset
    from napari_diffrendergan.data.patches import PatchSet
    from napari_diffrendergan.data.synthesis import PairRenderer, background_choice, generate
    from napari_diffrendergan.gan.run import GanRun, TrainingSettings
    from napari_diffrendergan.gan.training import train_iter
    from napari_diffrendergan.segment.model import ModelFolder
    from napari_diffrendergan.segment.predict import Segmenter
    from napari_diffrendergan.segment.training import train_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--widths", default="1,2", help="contour widths in px, comma-separated")
    args = parser.parse_args()
    if not (SHARED / "images").is_dir():
        sys.exit(f"skipped: real TiO2 SEM data not found at {SHARED}")
    out = args.out
    experiment = Experiment(out, SHARED, {"seed": 0, "device": "cpu", **BUDGETS["cpu"]})
    out.mkdir(parents=True, exist_ok=True)
    if not (out / "patches").is_dir():
        experiment.patches()
    run = GanRun(out / "gan")
    if not run.exists:  # only the untrained generator (epoch 0) is needed
        config = preset("tio2-sem")
        config.scene.spp = 121
        settings = TrainingSettings(epochs=1, seed=0, device="cpu")
        run = GanRun.create(run.folder, out / "patches", config, settings)
        for _ in train_iter(run, epochs=0):
            pass
    patches = PatchSet.open(out / "patches")
    listed, used = background_choice(patches.folder, BACKGROUND, 0)
    unused = sorted(set(range(len(listed))) - set(used))[:BACKGROUND]
    scans = [experiment.scan(i) for i in experiment.train_ids[::4]]
    for width in (int(w) for w in args.widths.split(",")):
        started = time.time()
        dataset = out / f"t{width}" / "Dataset001_Proxy"
        generate(
            run.folder,
            dataset,
            PAIRS,
            epoch=0,
            spp=121,
            contour_thickness=width,
            background_patches=out / "patches",
            n_background=BACKGROUND,
            workers=2,
            device="cpu",
        )
        model = out / f"model_t{width}"
        if not ModelFolder(model).is_complete:
            train_model(dataset, model, iterations=ITERATIONS, device="cpu", seed=0)
        print(f"width {width}: data + training {(time.time() - started) / 60:.1f} min")
        renderer = PairRenderer(run.generator(0), 0, 121, width, "cpu")
        segmenter = Segmenter(model, device="cpu")
        held_out = []
        for index in range(PAIRS, PAIRS + HELD_OUT):
            pair = renderer.render(index)
            held_out.append((pair.instances, segmenter.predict(pair.image)))
        for k in unused:
            image = patches.read(listed[k]) / 255
            held_out.append((np.zeros(image.shape, np.int32), segmenter.predict(image)))
        diagnosis = [(manual, segmenter.predict(image)) for image, manual in scans]
        results = {}
        for distance in (None, *SPLIT_DISTANCES):
            for floor in MIN_AREAS:
                key = f"{'contour' if distance is None else f'ws{distance}'} >={floor}"
                results[key] = {
                    "synthetic": pooled(held_out, width, distance, floor, "instances"),
                    "train_scans": pooled(diagnosis, width, distance, floor, "binary"),
                }
                print(
                    f"width {width} {key:14s} held-out AP50 "
                    f"{results[key]['synthetic']['ap50']:.3f} | training scans (diagnosis) "
                    f"{json.dumps(results[key]['train_scans'])}",
                    flush=True,
                )
        (out / f"results_t{width}.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
