"""Seed spread: the chapters that train networks rerun under several seeds, each seed in its own
work_dir, and the spread of every difference the book reports, as CSV and Markdown.

    python -m infercam.seeds --profile cpu --seeds 0 1 2
    make seeds PROFILE=cpu SEEDS="0 1 2"

The intervals of :mod:`infercam.bootstrap` say how much a difference depends on the sampled images;
this says how much it depends on the training seed: the classifier's initialisation and batches
(01, read by 02 to 04), the fine-tuned classifiers of Table 4 (06), AffinityNet (07) and the
segmentation networks of Table 5 (08), each on its own seed's upstream outputs.
Seed ``k`` runs in ``<work_dir>-seeds/seed<k>/`` (executed copies in
``build/seeds/<profile>/seed<k>/``), except the profile's own seed, whose run is the book's, in
``<work_dir>``; a notebook that finished there with the same parameters (``make book`` records
them too) is skipped. The table goes to ``<work_dir>-seeds/seed_spread.csv`` and ``.md``, one row per
difference: its value under each seed, their mean, minimum, maximum and range, and the paper's.
It is too long for ``make book`` (each seed costs the cpu profile most of a book: 07 and 08 alone take
about 16 minutes on 2 cores) and does not run there. 05 (the ablation grid) is left out: it measures
the CAM methods of 02 to 04 once more, at a grid's cost.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from statistics import NormalDist

import pandas as pd

from infercam import results
from infercam.bootstrap import LEVEL
from infercam.config import PROJECT_ROOT, WorkDirError, check_writable, load_profile, resolve_path
from infercam.download import write_text_atomic
from infercam.notebooks import NOTEBOOKS_DIR, execute_notebook, list_notebooks, notebook_parameters, values_seen
from infercam.runs import finished_with_parameters, record_parameters

DEFAULT_NOTEBOOKS = ["01_baseline_cam", "02_split_unite", "03_iterative", "04_combined", "06_split_retraining",
                     "07_random_walk", "08_segmentation"]
KEPT_DIR = PROJECT_ROOT / "measurements"  # a profile's kept `make seeds` table: measurements/<profile>-seeds
OUTPUT_DIR = PROJECT_ROOT / "build" / "seeds"
TABLE_NAME = "seed_spread"
SEED_TABLES = ("Table 1", "Table 2", "Table 3", "Table 4", "Table 5")
SAME_SPREAD = 1.25  # the seeds' and the images' standard deviations closer than this factor: "about as much"
CHAPTER_STEPS = ("02_split_unite", "03_iterative")  # their CAM variants against the baseline, on val


def seeds_dir(work_dir: str | os.PathLike) -> Path:
    """``<work_dir>-seeds``: the seeds' own work_dirs and the collected table."""
    work_dir = resolve_path(work_dir)
    return work_dir.with_name(f"{work_dir.name}-seeds")


def seed_work_dir(work_dir: str | os.PathLike, seed: int, profile_seed: int | None = None) -> Path:
    """Seed ``seed``'s work_dir: the profile's own (the book's run) for the profile's seed, else its own."""
    return resolve_path(work_dir) if seed == profile_seed else seeds_dir(work_dir) / f"seed{seed}"


def run_seeds(profile: str | os.PathLike, seeds: list[int], notebooks: list[str] | None = None,
              notebooks_dir: str | os.PathLike = NOTEBOOKS_DIR, output_dir: str | os.PathLike | None = None
              ) -> tuple[pd.DataFrame, list[Path], dict[str, str]]:
    """Run ``notebooks`` (in the book's order) under each seed, skipping those finished with the
    same parameters; stop a seed at its first failing notebook (the later ones read its output)
    and go on with the next seed. Returns the collected table, its files and the failures
    (``"seed k: notebook" -> error``)."""
    base = load_profile(profile)
    name = str(base.get("profile", Path(profile).stem))
    output_dir = resolve_path(output_dir) if output_dir else OUTPUT_DIR / name
    selected = list_notebooks(notebooks_dir, notebooks or DEFAULT_NOTEBOOKS)
    check_writable(seeds_dir(base["work_dir"]))
    failures = {}
    for seed in seeds:
        work_dir = seed_work_dir(base["work_dir"], seed, base.get("seed"))
        # the book's run recorded the profile's work_dir as written (e.g. runs/cpu): passed the same way, it matches
        passed_dir = base["work_dir"] if seed == base.get("seed") else str(work_dir)
        for notebook in selected:
            parameters = notebook_parameters(notebook, {**base, "seed": seed, "work_dir": passed_dir})
            if finished_with_parameters(work_dir, notebook.stem, values_seen(notebook, parameters)):
                print(f"seed {seed}: {notebook.stem} finished with the same parameters, skipped", flush=True)
                continue
            started = time.perf_counter()
            (output_dir / f"seed{seed}").mkdir(parents=True, exist_ok=True)
            failure = execute_notebook(notebook, output_dir / f"seed{seed}" / notebook.name, parameters, progress_bar=False)
            if failure:
                failures[f"seed {seed}: {notebook.stem}"] = str(failure)
                print(f"seed {seed}: {notebook.stem} FAILED: {failure.error}", flush=True)
                break
            record_parameters(work_dir, notebook.stem, values_seen(notebook, parameters))
            print(f"seed {seed}: {notebook.stem} done in {time.perf_counter() - started:.0f} s", flush=True)
    work_dirs = {seed: seed_work_dir(base["work_dir"], seed, base.get("seed")) for seed in seeds}
    table = collect_seed_table(work_dirs)
    return table, write_seed_table(table, base["work_dir"], seed_contexts(work_dirs)), failures


def chapter_differences(steps: dict[str, dict]) -> dict[tuple[str, str, str], float]:
    """The CAM variants of chapters 02 and 03 minus their baseline, in mIoU points on val."""
    values = {}
    for step in CHAPTER_STEPS:
        cams = steps.get(step, {}).get("cams", {})
        if "baseline" not in cams:
            continue
        for variant, summary in cams.items():
            if variant != "baseline":
                values[step, f"Δ {variant} − baseline", "val CAM"] = 100 * (summary["miou"] - cams["baseline"]["miou"])
    return values


def collect_seed_table(work_dirs: dict[int, str | os.PathLike]) -> pd.DataFrame:
    """One row per difference the seeds' runs measured, indexed by (table or chapter, row,
    measure): the paper's value, each seed's, and the mean, min, max and range over the seeds."""
    runs, _ = results.load_runs({f"seed {seed}": work_dir for seed, work_dir in work_dirs.items()})
    effects = results.gains({name: results.TABLES[name](runs) for name in SEED_TABLES})
    chapters = pd.DataFrame({profile: chapter_differences({step: p["metrics"] for step, p in steps.items()})
                             for profile, steps in runs.items()}, dtype=float)
    if len(chapters):
        chapters.index.names = effects.index.names
        effects = pd.concat([effects, chapters])
    per_seed = effects.reindex(columns=[f"seed {seed}" for seed in work_dirs])
    table = pd.DataFrame({"paper": effects.get(results.PAPER), "seeds": per_seed.notna().sum(axis=1),
                          "mean": per_seed.mean(axis=1), "min": per_seed.min(axis=1), "max": per_seed.max(axis=1)})
    table["range"] = table["max"] - table["min"]
    # a difference only one seed measured (its notebook did not run under the others) has no spread
    return pd.concat([table, per_seed], axis=1)[lambda t: t["seeds"] > 1]


def seed_table_paths(work_dir: str | os.PathLike) -> tuple[Path, Path, Path]:
    """The collected table of ``work_dir``'s seeds as CSV and Markdown, and the seeds' runs (JSON)."""
    folder = seeds_dir(work_dir)
    return folder / f"{TABLE_NAME}.csv", folder / f"{TABLE_NAME}.md", folder / f"{TABLE_NAME}.json"


def seed_contexts(work_dirs: dict[int, str | os.PathLike]) -> dict[str, dict]:
    """Where each seed's numbers come from: the run context (date, commit, machine, precision) of
    its first seeded chapter (01_baseline_cam, which trains the classifier), else of its first
    metrics file in the book's order ("seed k" -> context; none without files)."""
    runs, _ = results.load_runs({f"seed {seed}": work_dir for seed, work_dir in work_dirs.items()})
    return {seed: next((steps[step] for step in DEFAULT_NOTEBOOKS if step in steps), steps[min(steps)]).get("context", {})
            for seed, steps in runs.items()}


def write_seed_table(table: pd.DataFrame, work_dir: str | os.PathLike, contexts: dict[str, dict] | None = None) -> list[Path]:
    """The table (CSV, Markdown) and the seeds' run contexts (JSON, :func:`seed_contexts`), each
    written atomically: a run killed while writing never leaves half a table."""
    csv, markdown, runs = seed_table_paths(work_dir)
    csv.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(csv, table.to_csv())
    write_text_atomic(markdown, "# Seed spread of each difference (mIoU points)\n\n" + table.to_markdown(floatfmt=".2f") + "\n")
    write_text_atomic(runs, json.dumps({"seeds": contexts or {}}, indent=2, sort_keys=True))
    return [csv, markdown, runs]


def read_seed_spread(folder: str | os.PathLike) -> tuple[pd.DataFrame, dict[str, dict]] | None:
    """(table, the seeds' run contexts) of the ``make seeds`` table in ``folder`` (a work_dir's
    ``<work_dir>-seeds``, or a copy of one kept in the repository), or None when it has none."""
    csv = resolve_path(folder) / f"{TABLE_NAME}.csv"
    if not csv.is_file():
        return None
    runs = csv.with_suffix(".json")
    return pd.read_csv(csv, index_col=[0, 1, 2]), json.loads(runs.read_text())["seeds"] if runs.is_file() else {}


def read_seed_table(work_dir: str | os.PathLike) -> pd.DataFrame | None:
    """The table the latest ``make seeds`` collected for this work_dir, or None."""
    spread = read_seed_spread(seeds_dir(work_dir))
    return None if spread is None else spread[0]


def made_by(spread: tuple[pd.DataFrame, dict[str, dict]], profile: str) -> bool:
    """Whether every seed of a ``make seeds`` table ran ``profile`` (another profile's seeds say
    nothing about this one's numbers)."""
    return {context.get("profile") for context in spread[1].values()} == {profile}


def spreads_to_show(work_dirs: dict[str, str | os.PathLike], profile: str,
                    kept: str | os.PathLike = "") -> dict[str, tuple[pd.DataFrame, dict[str, dict]]]:
    """The ``make seeds`` tables that 10_results shows, by label: each profile's own (``work_dirs``:
    profile -> work_dir; its ``<work_dir>-seeds``) and, when ``profile`` has none, the copy kept in
    the repository at ``kept``, if that one was made by ``profile``."""
    collected = {name: spread for name, path in work_dirs.items()
                 if (spread := read_seed_spread(seeds_dir(path))) is not None}
    from infercam.page import shown_path  # the book shows paths relative to the repository

    spreads = {f"{name} (`{shown_path(seed_table_paths(work_dirs[name])[0])}`)": spread for name, spread in collected.items()}
    kept_spread = read_seed_spread(kept) if kept and profile not in collected else None
    if kept_spread is not None and made_by(kept_spread, profile):
        spreads[f"{profile}, kept in the repository (`{shown_path(resolve_path(kept))}`)"] = kept_spread
    return spreads


def profile_seed_spread(profile: str, work_dir: str | os.PathLike,
                        kept: str | os.PathLike | None = None) -> tuple[pd.DataFrame, str] | None:
    """The seed table a chapter quotes beside its intervals, and where it comes from in words: the
    work_dir's own (``<work_dir>-seeds``), else the copy kept in the repository (``kept``, by default
    ``measurements/<profile>-seeds``; "": none) if ``profile``'s seeds made it; None when neither exists."""
    from infercam.page import shown_path  # the book shows paths relative to the repository

    own = read_seed_spread(seeds_dir(work_dir))
    if own is not None:
        return own[0], f"`make seeds`, `{shown_path(seeds_dir(work_dir))}`"
    kept = KEPT_DIR / f"{profile}-seeds" if kept is None else kept
    kept_spread = read_seed_spread(kept) if kept else None  # "": no kept copy
    if kept_spread is None or not made_by(kept_spread, profile):
        return None
    dates = sorted(context.get("date", "?")[:10] for context in kept_spread[1].values())
    when = dates[0] if dates[0] == dates[-1] else f"{dates[0]} to {dates[-1]}"
    return kept_spread[0], f"the `make seeds` run of {when} kept in `{shown_path(resolve_path(kept))}`"


def seed_shares(spread: tuple[pd.DataFrame, str] | None, differences: dict[str, tuple[tuple[str, str, str], pd.Series]],
                profile: str) -> str:
    """Sentences to set after some differences' verdicts: for each (``what`` -> (its row of the seed
    table, (table, row, measure); its interval, a row of :func:`paired_bootstrap`)) its range over
    the seeds of ``spread`` (:func:`profile_seed_spread`) beside its 95% interval over the images,
    and which of the two moves it more; how to measure the seeds' share where no seed table has the
    rows. Which moves it more compares standard deviations: the seeds' values' (n − 1 in the
    denominator) against the images' standard error, the interval's width over 2 × 1.96, as the
    range of three seeds is narrower than a 95% interval of the same spread; within a factor of
    ``SAME_SPREAD`` of each other they are called about equal (three seeds give a rough estimate)."""
    said = []
    for what, (difference, interval) in differences.items():
        if spread is None or difference not in spread[0].index:
            continue
        row, source = spread[0].loc[difference], spread[1]
        seed_sd = row[[column for column in row.index if column.startswith("seed ")]].dropna().std(ddof=1)
        image_sd = (interval["Δ high"] - interval["Δ low"]) / (2 * NormalDist().inv_cdf(0.5 + LEVEL / 2))
        dominant = ("the training seed moves it more than the sampled images do" if seed_sd > SAME_SPREAD * image_sd
                    else "the sampled images move it more than the training seed does" if image_sd > SAME_SPREAD * seed_sd
                    else "the two move it about as much")
        said.append(f"{what}, over {int(row['seeds'])} training seeds ({source}), ranged {row['min']:+.2f}..{row['max']:+.2f} "
                    f"(standard deviation {seed_sd:.2f} points), against a {LEVEL:.0%} interval over the images of "
                    f"{interval['Δ low']:+.2f}..{interval['Δ high']:+.2f} (standard error about {image_sd:.2f}): {dominant}.")
    return " ".join(said) or (f"The training seed's share is not measured for this profile: `make seeds PROFILE={profile}` "
                              "measures it.")


def sign_changes(table: pd.DataFrame) -> list[tuple]:
    """The rows (differences) whose seeds disagree on the sign: some seed's difference below zero,
    another's above."""
    return [row for row, values in table.iterrows() if values["min"] < 0 < values["max"]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infercam.seeds", description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="cpu", help="profile name under profiles/ or a YAML path (default: cpu)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="the seeds (default: 0 1 2)")
    parser.add_argument("--notebooks", nargs="+", metavar="NAME",
                        help=f"the notebooks to rerun (default: {' '.join(DEFAULT_NOTEBOOKS)}; add 05_ablations "
                             "for the ablation grid)")
    args = parser.parse_args(argv)
    if len(set(args.seeds)) < 2:
        print("error: a spread needs at least two different seeds, e.g. --seeds 0 1 2", file=sys.stderr)
        return 2
    try:
        table, files, failures = run_seeds(args.profile, args.seeds, args.notebooks)
    except (FileNotFoundError, ValueError, WorkDirError) as error:  # ValueError: also a profile's wrong types
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(table.round(2).to_string())
    print(f"table: {', '.join(map(str, files))}")
    for where, error in failures.items():
        print(f"error: {where} failed: {error}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
