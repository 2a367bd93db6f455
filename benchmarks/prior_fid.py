"""How close a scene prior looks to the TiO2 scans before any training: the untrained
generator's FID (epoch 0, the GAN's own set-up at the experiment's spp) against the TiO2
experiment's 124 particle patches, for the hand-set ``tio2-sem`` preset, the calibrated prior
(as the experiment's ``calibration`` stage makes it, matched or not) and variants of it.
Diagnosis only: the masks are not read, and nothing is chosen on these figures.

Run: ``python benchmarks/prior_fid.py --out FOLDER`` (about 2 min per prior on 2 cores; the
patches and the calibration are made once in FOLDER by ``tio2_sem.py``'s own stages).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from napari_diffrendergan.analysis import matching
from napari_diffrendergan.config import MaterialConfig, preset
from napari_diffrendergan.gan.run import GanRun, TrainingSettings
from napari_diffrendergan.gan.training import train_iter
from tio2_sem import BUDGETS, LATER_SETTINGS, SHARED, Experiment

SETTINGS = {"budget": "cpu", "seed": 0, "device": "cpu", **LATER_SETTINGS, **BUDGETS["cpu"]}


def calibrated(out: Path, matched: bool) -> MaterialConfig:
    """The calibrated prior of the experiment's ``calibration`` stage (in its own folder)."""
    rounds = matching.ROUNDS
    matching.ROUNDS = rounds if matched else 0  # no round: the measured prior as it is
    try:
        experiment = Experiment(out, SHARED, SETTINGS, ("calibrated",))
        experiment.stage("patches", experiment.patches)
        experiment.stage("calibration", experiment.calibration)
    finally:
        matching.ROUNDS = rounds
    return MaterialConfig.load(out / "calibration" / "calibrated.json")


def priors(out: Path) -> dict[str, MaterialConfig]:
    """Every prior scored: the hand-set preset, the calibrated one and variants of it."""
    plain, matched = calibrated(out / "unmatched", False), calibrated(out / "matched", True)
    twice = dataclasses.replace(
        matched.physical, density_per_um2=2 * matched.physical.density_per_um2
    )
    variants = {
        "twice the density": {"physical": twice},
        "pebbles library": {"meshes": dataclasses.replace(matched.meshes, library="pebbles")},
        "hand-set dense fraction 0.5 (read off masks)": {
            "placement": dataclasses.replace(matched.placement, dense_fraction=0.5)
        },
    }
    found = {"hand-set tio2-sem": preset("tio2-sem"), "calibrated": plain, "matched": matched}
    for name, change in variants.items():
        found[f"matched, {name}"] = dataclasses.replace(matched, **change).validate()
    return found


def untrained_fid(config: MaterialConfig, folder: Path, patches: Path) -> float:
    """The FID of the untrained generator of a new GAN run on ``patches``."""
    config.scene.spp = SETTINGS["gan_spp"]
    settings = TrainingSettings(epochs=1, seed=SETTINGS["seed"], device=SETTINGS["device"])
    run = GanRun.create(folder, patches, config, settings)
    for event in train_iter(run, epochs=1):
        if event.kind == "epoch":  # epoch 0: the untrained generator
            return event.metrics["fid"]
    raise AssertionError("training ended before its first FID")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path, help="a new folder")
    args = parser.parse_args()
    if not (SHARED / "images").is_dir():
        sys.exit(f"real TiO2 SEM data not found at {SHARED}: nothing to do")
    rows = {}
    for index, (name, config) in enumerate(priors(args.out).items()):
        fid = untrained_fid(config, args.out / f"gan{index}", args.out / "matched" / "patches")
        rows[name] = {"meshes": config.meshes.count, "library": config.meshes.library, "fid": fid}
        print(f"{name}: {config.meshes.count} {config.meshes.library}, FID {fid:.1f}", flush=True)
    (args.out / "prior_fid.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
