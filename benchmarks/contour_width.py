"""Which contour width (and how many nnU-Net iterations) separates touching TiO2 particles best:
a small proxy of the TiO2 SEM experiment (about 15 min per width at the defaults on 2 cores).

Per width: ``--pairs`` pairs (300) of the untrained generator (epoch 0) at spp 121 + 60 real
background patches; per iteration count (``--iterations``, 400), nnU-Net ``small`` trained on
them from scratch; every splitting rule of the experiment is scored
(AP50) on 24 held-out synthetic pairs + 60 unused background patches (the selection rule) and,
as a diagnosis only (never used to choose), on every 4th training scan against its manual mask.

Run: ``.venv/bin/python benchmarks/contour_width.py --out DIR --widths 1,2``
(``--iterations 400,1000,2000 --pairs 600``, ``--seed 1`` for the iteration study)
"""

import argparse
import json
import sys
import time
from pathlib import Path

from tio2_data import SHARED
from tio2_sem import BUDGETS, RULES, Experiment, held_out_images, pooled_scores, predicted

BACKGROUND = 60


def main() -> None:
    from napari_diffrendergan.config import preset
    from napari_diffrendergan.gan.run import GanRun, TrainingSettings
    from napari_diffrendergan.gan.synthesis import PairRenderer, generate
    from napari_diffrendergan.gan.training import train_iter
    from napari_diffrendergan.io import write_json_atomic
    from napari_diffrendergan.segment.model import ModelFolder
    from napari_diffrendergan.segment.predict import Segmenter
    from napari_diffrendergan.segment.training import train_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--widths", default="1,2", help="contour widths in px, comma-separated")
    parser.add_argument("--iterations", default="400", help="nnU-Net iterations, comma-separated")
    parser.add_argument("--pairs", type=int, default=300, help="synthetic training pairs")
    parser.add_argument("--seed", type=int, default=0, help="nnU-Net training seed")
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
    scans = [experiment.scan(i) for i in experiment.train_ids[::4]]
    for width in (int(w) for w in args.widths.split(",")):
        started = time.time()
        dataset = out / f"p{args.pairs}_t{width}" / "Dataset001_Proxy"
        generate(
            run.folder,
            dataset,
            args.pairs,
            epoch=0,
            spp=121,
            contour_thickness=width,
            background_patches=out / "patches",
            n_background=BACKGROUND,
            workers=2,
            device="cpu",
        )
        renderer = PairRenderer(run.generator(0), 0, 121, width, "cpu")
        held_out_set = held_out_images(
            renderer, args.pairs, out / "patches", BACKGROUND, 0, limit=BACKGROUND
        )
        for iterations in (int(i) for i in args.iterations.split(",")):
            tag = f"p{args.pairs}_t{width}_i{iterations}" + (f"_s{args.seed}" if args.seed else "")
            model = out / f"model_{tag}"
            if not ModelFolder(model).is_complete:
                train_model(dataset, model, iterations=iterations, device="cpu", seed=args.seed)
            print(f"{tag}: data + training so far {(time.time() - started) / 60:.1f} min")
            segmenter = Segmenter(model, device="cpu")
            held_out = predicted(segmenter, held_out_set)
            diagnosis = predicted(segmenter, scans)
            results = {}
            for rule in RULES:
                key = rule.name
                results[key] = {
                    "synthetic": pooled_scores(held_out, width, rule, "instances"),
                    "train_scans": pooled_scores(diagnosis, width, rule, "binary"),
                }
                print(
                    f"{tag} {key:36s} held-out AP50 "
                    f"{results[key]['synthetic']['ap50']:.3f} | training scans (diagnosis) "
                    f"{json.dumps(results[key]['train_scans'])}",
                    flush=True,
                )
            write_json_atomic(out / f"results_{tag}.json", results)


if __name__ == "__main__":
    main()
