"""How close a scene prior looks to the TiO2 scans before any training: the untrained
generator's FID (epoch 0, the GAN's own set-up at the experiment's spp) against the TiO2
experiment's 124 particle patches, for the hand-set ``tio2-sem`` preset and the calibrated prior
as the experiment's ``calibration`` stage makes it, at the scans' density and at that of the
particle patches. Diagnosis only: the masks are not read.

Run: ``python benchmarks/prior_fid.py --out FOLDER`` (about 2 min per prior on 2 cores; the
patches and the calibration are made once in FOLDER by ``tio2_sem.py``'s own stages).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from napari_diffrendergan.analysis.calibration import calibrated_config
from napari_diffrendergan.config import MaterialConfig, preset
from napari_diffrendergan.gan.prior_choice import untrained_fid
from napari_diffrendergan.progress import Monitor
from tio2_sem import BUDGETS, LATER_SETTINGS, SHARED, Experiment

SETTINGS = {"budget": "cpu", "seed": 0, "device": "cpu", **LATER_SETTINGS, **BUDGETS["cpu"]}


def calibrated(out: Path) -> tuple[dict, MaterialConfig]:
    """The report and calibrated prior of the experiment's ``calibration`` stage (in ``out``)
    and the ``like`` preset it was made with."""
    experiment = Experiment(out, SHARED, SETTINGS, ("calibrated",))
    experiment.stage("patches", experiment.patches)
    experiment.stage("calibration", experiment.calibration)
    report = json.loads((out / "calibration" / "report.json").read_text())
    return report, experiment.calibration_like()


def priors(out: Path) -> dict[str, MaterialConfig]:
    """Every prior scored: the hand-set preset and the calibrated one at the scans' density and
    at the particle patches' (what the calibration stage writes)."""
    report, like = calibrated(out / "calibrated")
    at_scans = {key: value for key, value in report.items() if key != "fields"}
    return {
        "hand-set tio2-sem": preset("tio2-sem"),
        "calibrated: scans' density": calibrated_config(at_scans, like),
        "calibrated: particle patches' density": calibrated_config(report, like),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path, help="a new folder")
    args = parser.parse_args()
    if not (SHARED / "images").is_dir():
        sys.exit(f"real TiO2 SEM data not found at {SHARED}: nothing to do")
    rows, patches = {}, args.out / "calibrated" / "patches"
    for index, (name, config) in enumerate(priors(args.out).items()):
        config.scene.spp = SETTINGS["gan_spp"]
        fid = untrained_fid(
            config, args.out / f"gan{index}", patches, SETTINGS["device"], Monitor()
        )
        rows[name] = {"meshes": config.meshes.count, "library": config.meshes.library, "fid": fid}
        print(f"{name}: {config.meshes.count} {config.meshes.library}, FID {fid:.1f}", flush=True)
    (args.out / "prior_fid.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
