"""The analysis subcommands: ``evaluate`` predicted masks against manual ones, nanowire
``thickness`` maps, and ``calibrate`` a scene prior from unannotated scans."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from . import options


def add_evaluate_parser(sub) -> None:
    from ..analysis.particles import MIN_AREA

    evaluate = sub.add_parser(
        "evaluate", help="score predicted masks against manual ones (Dice, AP50, PQ)"
    )
    evaluate.add_argument("--pred", required=True, help="folder of predicted label images")
    evaluate.add_argument("--truth", required=True, help="folder of manual masks")
    options.add_json(evaluate, "all scores")
    for which in ("truth", "pred"):
        evaluate.add_argument(
            f"--{which}-kind",
            choices=("auto", "binary", "semantic", "instances"),
            help=f"what the {which} files hold: binary (any nonzero pixel is a particle), "
            "semantic (3-class 0/1/2: background, particle, contour) or instances (default: "
            "*_mask semantic, *_instances instances, else auto: told from the values, and "
            "refused when they fit no kind)",
        )
    options.add_pixel_size(evaluate, help="nm per pixel for sizes (else the files' sidecars)")
    evaluate.add_argument(
        "--min-area",
        type=options.whole(1),
        default=MIN_AREA,
        metavar="PX",
        help=f"size floor: smaller particles are left out of sizes on both sides ({MIN_AREA})",
    )
    evaluate.add_argument(
        "--keep-border",
        action="store_true",
        help="also size particles cut by the image border (left out by default)",
    )
    evaluate.set_defaults(func=cmd_evaluate)


def cmd_evaluate(args) -> int:
    from ..analysis.evaluation import evaluate_folders

    result = evaluate_folders(
        args.pred,
        args.truth,
        truth_kind=args.truth_kind,
        pred_kind=args.pred_kind,
        pixel_size_nm=args.pixel_size,
        min_area_px=args.min_area,
        keep_border=args.keep_border,
    )
    _print_scores(result)
    if result["missing_predictions"]:
        print(f"no prediction for: {', '.join(result['missing_predictions'])}")
    _print_size_agreement(result["sizes"])
    if args.json:
        print(json.dumps(options.valid_json(result), allow_nan=False))
    return 0


def _print_scores(result: dict) -> None:
    """Per image and overall: Dice, AP50, PQ and how the particles matched; COCO-style AP50."""
    columns = ("dsc", "ap50", "pq", "pq_paper", "n_true", "n_pred", "tp", "merged", "split")
    columns += ("missed", "pieces", "false_positive")
    titles = ("Dice", "AP50", "PQ", "PQpap", "true", "found", "match", "merge", "split")
    titles += ("miss", "piece", "FP")
    print(f"{'image':16s}" + "".join(f" {t:>6s}" for t in titles))
    for row in [*result["images"], {"name": "all (mean/sum)", **result}]:
        cells = [f"{row[c]:6.3f}" if isinstance(row[c], float) else f"{row[c]:6d}" for c in columns]
        print(f"{row['name'][:16]:16s} " + " ".join(cells))
    print(
        f"found/manual {result['count_ratio']:.3f}; merge: one prediction over ≥ 2 manual "
        "particles, split: a manual particle cut in ≥ 2, miss: neither matched, merged nor "
        "split, piece: other predictions on particles (fragments), FP: predictions on "
        "background; PQpap: the paper's PQ (IoU of the foreground)"
    )
    if result["ap50_coco"] is not None:
        print(
            "COCO-style AP50 (all images, predictions ranked by confidence): "
            f"{result['ap50_coco']:.3f}"
        )
    else:
        print(
            "COCO-style AP50: needs every prediction as an instance image with its particle "
            "table (confidence per particle), as `diffrendergan segment` writes them"
        )


def _print_size_agreement(sizes: dict) -> None:
    """Per image and pooled: the manual D-values and the predicted ones' error, KS, Wasserstein
    and the count ratio."""
    unit = sizes["pooled"]["unit"]
    titles = ("true", "found", "D10", "err%", "D50", "err%", "D90", "err%", "KS", f"W {unit}")
    print(f"\nsizes{'':11s}" + "".join(f" {t:>6s}" for t in titles))
    for row in [*sizes["images"], {"name": "all (pooled)", **sizes["pooled"]}]:
        cells = [row["count_a"]["measured"], row["count_b"]["measured"]]
        for key in ("D10", "D50", "D90"):
            cells += [row["a"][key]["value"], row[f"{key}_difference_percent"]]
        cells += [row["ks_statistic"], row[f"wasserstein_{unit}"]]
        print(f"{row['name'][:16]:16s} " + " ".join(_cell(c) for c in cells))
    border = "kept" if sizes["border_particles_included"] else "left out"
    print(
        f"equivalent diameters in {unit} (manual D-values; err%: found off manual), with the "
        f"same rules on both sides: particles within {sizes['border_px']} px of the border "
        f"{border}, under {sizes['min_area_px']} px left out"
    )


def _cell(value) -> str:
    """A size-table cell: whole numbers as they are, others to 3 digits, – for none."""
    if value is None:
        return f"{'–':>6s}"
    return f"{value:6d}" if isinstance(value, int) else f"{value:6.3g}"


def add_thickness_parser(sub) -> None:
    from ..analysis.thickness import METHODS

    thickness = sub.add_parser("thickness", help="local-thickness maps of nanowire masks")
    thickness.add_argument("masks", nargs="+", help="mask images (any nonzero = foreground)")
    options.add_out(thickness)
    options.add_pixel_size(thickness)
    thickness.add_argument(
        "--method",
        choices=METHODS,
        default="exact",
        help="exact (default: the definition, computed fast) or localthickness (the package of "
        "that name: an approximation, slower; docs/thickness.md)",
    )
    thickness.set_defaults(func=cmd_thickness)


def cmd_thickness(args) -> int:
    from ..analysis.thickness import analyse, output_paths, write_outputs
    from ..errors import DiffRenderGANError
    from ..io import distinct_files, file_message, output_names, read_image, refuse_overwriting

    paths = distinct_files(args.masks)
    names = output_names(paths)
    refuse_overwriting(paths, [p for n in names for p in output_paths(args.out, n).values()])
    failed = 0
    rows = []
    with options.progress_bar("thickness") as monitor:
        for done, (path, name) in enumerate(zip(paths, names, strict=True)):
            monitor.report(done, len(paths), path.name)
            try:
                mask, sidecar_nm = read_image(path)
                result = analyse(mask, args.pixel_size or sidecar_nm, method=args.method)
            except DiffRenderGANError as err:
                print(f"  skipped: {file_message(path, err)}", file=sys.stderr)
                failed += 1
                continue
            write_outputs(result, args.out, name, source=str(path))
            rows.append((name, result.summary()))
    unit_note = "" if args.pixel_size else " (nm where the file's sidecar or metadata has one)"
    print(f"Local thickness of {len(rows)} mask(s) written to {args.out}{unit_note}")
    for name, summary in rows:
        print(
            f"  {name}: {summary['n_wires']} wires, median wire diameter "
            f"{summary['median']:.3g} {summary['unit']} (p5-p95 {summary['p5']:.3g}-"
            f"{summary['p95']:.3g}), pixel-weighted mean {summary['pixel_weighted_mean']:.3g}"
        )
    return 1 if failed else 0


def add_calibrate_parser(sub) -> None:
    calibrate = sub.add_parser(
        "calibrate", help="measure a scene prior (sizes in nm, density, polarity) from scans"
    )
    calibrate.add_argument("scans", nargs="+", help="unannotated scans (files or folders)")
    calibrate.add_argument(
        "--out", help="preset JSON to write (needs the pixel size: sizes are stated in nm)"
    )
    options.add_pixel_size(calibrate, help="nm per pixel (else the sidecars')")
    calibrate.add_argument(
        "--like",
        help="preset (name or JSON) giving the scene lighting and learning limits (default: the "
        "preset of the shape family found)",
    )
    calibrate.add_argument(
        "--compare-shapes",
        action="store_true",
        help="render the preset with grains, spheres and cubes as an untrained GAN would and "
        "keep the one that looks closest to particle patches of the scans (FID; a few minutes "
        "per shape on a CPU). A ranking of looks, not a shape measurement: on rendered scans "
        "it named the true shape in 1 of 4 cases, the measurement in 3 (docs/calibration.md)",
    )
    options.add_device(calibrate, "for --compare-shapes' renders: ")
    options.add_exclude_bottom(calibrate, each="scan")
    options.add_json(calibrate, "everything")
    calibrate.set_defaults(func=cmd_calibrate)


def cmd_calibrate(args) -> int:
    """``diffrendergan calibrate``: a scene prior measured from unannotated scans."""
    from ..analysis.calibration import (
        NO_PIXEL_SIZE,
        CalibrationError,
        calibrated_config,
        read_scans,
    )
    from ..analysis.matching import measure_prior
    from ..config import load_config

    like = load_config(args.like) if args.like else None
    scans, pixel = read_scans(args.scans, args.pixel_size, args.exclude_bottom)
    if (args.out or args.compare_shapes) and not pixel:
        raise CalibrationError(NO_PIXEL_SIZE)
    with options.progress_bar("calibrate") as monitor:
        report = measure_prior(scans, pixel, like, monitor, args.compare_shapes, args.device)
    for line in calibration_lines(report):
        print(line)
    if args.out:
        config = calibrated_config(report, like, name=Path(args.out).stem)
        config.save(args.out)
        s = config.scene
        print(
            f"Preset {args.out}: {config.meshes.count} {config.meshes.library} meshes in a "
            f"{s.width}x{s.height} px field {s.field_width:.4g} mesh units wide (scene and "
            f"learning of {args.like or 'the ' + config.meshes.library + ' preset'})"
        )
    if args.json:
        print(json.dumps(options.valid_json(report), allow_nan=False))
    return 0


def prior_lines(report: dict) -> list[str]:
    """Where the preset differs from the scans' estimates: the particle fields' density,
    the shape chosen by rendering (:func:`~..analysis.matching.prior_rows`), matching."""
    from ..analysis.matching import prior_rows

    rows = [f"  {label.lower()}: {text}" for label, text in prior_rows(report)]
    return rows + matching_lines(report)


def matching_lines(report: dict) -> list[str]:
    """What rendering the prior changed (:func:`~..analysis.matching.match_prior`)."""
    from ..analysis.matching import record
    from ..wording import counted

    matching = record(report)
    if matching is None:
        return []
    seen, rounds = matching["seen"], counted(len(matching["rounds"]), "round")
    return [
        f"  the prior rendered and measured like the scans ({rounds}): "
        f"median diameter {report['median_diameter_nm']:.4g} nm (seen "
        f"{seen['median_diameter_nm']:.4g}), {report['density_per_um2']:.4g} particles per µm² "
        f"over the scans (seen {seen['density_per_um2']:.4g}), size fit "
        f"×{matching['fit_scale']:.3g}"
    ]


def _texture_lines(estimates: dict) -> list[str]:
    """The background's film texture (reports from before it was measured have none)."""
    from ..analysis.calibration import interval_text

    texture = estimates.get("film_texture")
    if not texture or texture["value"] is None:
        return []
    return [
        f"  background texture: σ {texture['value']:.3g} of its brightness "
        f"({interval_text(texture)})"
    ]


def calibration_lines(report: dict) -> list[str]:
    """What ``calibrate`` found, for people."""
    from ..analysis.calibration import interval_text, measured_family

    estimates, unit, fit = report["estimates"], report["unit"], report["size_fit"]
    median = estimates["diameter"]["median"]
    density_name = "density_per_um2" if unit == "nm" else "density_per_megapixel"
    density = estimates[density_name]
    agglomerates, shape = estimates["share_in_clusters"], estimates["shape"]
    chosen = "two modes" if fit["chosen"] == "bimodal" else fit["chosen"]
    sizes = f"size fit {chosen} (BIC lognormal {fit['lognormal']['bic']:.1f}"
    if "normal" in fit:
        sizes += f", normal {fit['normal']['bic']:.1f}"
    if "bimodal" in fit:
        smaller = 100 * min(fit["bimodal"]["weight2"], 1 - fit["bimodal"]["weight2"])
        sizes += f", two modes {fit['bimodal']['bic']:.1f} with {smaller:.0f} % in the smaller"
    return [
        f"Calibrated from {report['scans']} scan(s): {report['polarity']} particles, "
        f"{measured_family(report)}; {report['counts']['measured']} of "
        f"{report['counts']['particles']} particles measured whole",
        f"  median diameter {median['value']:.4g} {unit} (95 % CI {interval_text(median)}); "
        f"{sizes})",
        f"  {density['value']:.4g} particles per {'µm²' if unit == 'nm' else 'megapixel'} "
        f"({interval_text(density)}), {100 * estimates['coverage']['value']:.1f} % covered",
        f"  {100 * agglomerates['value']:.0f} % of particles in clusters "
        f"({interval_text(agglomerates, 100)} %), median cluster "
        f"{estimates['cluster_size']['value'] or 0:.0f} particles",
        f"  shape: aspect ratio {shape['aspect']['value']:.3g}, circularity "
        f"{shape['circularity']['value']:.3g}, elongation {shape['elongation']['value']:.3g}",
        *_texture_lines(estimates),
        *prior_lines(report),
        *(f"  note: {note}" for note in report["notes"]),
    ]
