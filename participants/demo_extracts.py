"""Site extracts as hospitals really send them, generated from the embedded demo data (simulated sites).

Each simulated site's share of scikit-learn's breast-cancer set (:mod:`participants.embedded_data`)
is written as the kind of extract a hospital's data engineer hands over, each with its own quirk:

- ``de-berlin.csv``: German column names, ``?`` for a texture not recorded, diagnosis ``M``/``B``;
- ``fr-lyon.csv``: French column names, ``0`` in the smoothness column where it was not measured
  (a sentinel), diagnosis ``M``/``B``;
- ``gb-leeds.parquet``: a Parquet file with no symmetry column at all (not collected at that site);
- ``ch-zurich.csv``: a rare positive class (about 5% of its rows), diagnosis written ``malignant``/
  ``benign`` and the size band as ``S``/``M``/``L`` (site codes its node config maps).

Ten measured features are kept (the ``mean ...`` columns) plus a ``size band`` category derived
from the mean radius (below 12 mm small, below 16 mm medium, else large). The files are
committed under ``examples/extract-sites/``; ``python -m participants.demo_extracts FOLDER``
writes them again (deterministic: seeded).
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np

from participants.embedded_data import embedded_partition

SEED = 2026
FEATURES = (
    "radius",
    "texture",
    "perimeter",
    "area",
    "smoothness",
    "compactness",
    "concavity",
    "concave_points",
    "symmetry",
    "fractal_dimension",
)
"""The contract's names of the ten ``mean ...`` features, in the data set's order."""
COLUMNS = {
    "de-berlin": ("radius_mittel", "textur", "umfang", "flaeche", "glaette", "kompaktheit", "konkavitaet",
                  "konkave_punkte", "symmetrie", "fraktale_dimension", "groessenklasse", "diagnose"),
    "fr-lyon": ("rayon", "texture", "perimetre", "aire", "lissage", "compacite", "concavite", "points_concaves",
                "symetrie", "dimension_fractale", "classe_taille", "diagnostic"),
    "gb-leeds": ("radius", "texture", "perimeter", "area", "smoothness", "compactness", "concavity",
                 "concave_points", "symmetry", "fractal_dimension", "size_band", "diagnosis"),
    "ch-zurich": ("radius", "texture", "perimeter", "area", "smoothness", "compactness", "concavity",
                  "concave_points", "symmetry", "fractal_dimension", "size_band", "diagnosis"),
}  # fmt: skip
PARTITIONS = {"de-berlin": 0, "fr-lyon": 1, "gb-leeds": 2, "ch-zurich": 3}


def _size_band(radius: float, codes: tuple[str, str, str]) -> str:
    return codes[0] if radius < 12 else codes[1] if radius < 16 else codes[2]


def site_rows(site_id: str) -> list[list[str | float]]:
    """The extract of one site: a header row, then one row per record (cells as the site writes them)."""
    features, labels = embedded_partition(PARTITIONS[site_id])
    rng = np.random.default_rng([SEED, PARTITIONS[site_id]])
    header = list(COLUMNS[site_id])
    rows: list[list[str | float]] = [list(header)]
    band_codes = ("S", "M", "L") if site_id == "ch-zurich" else ("small", "medium", "large")
    diagnosis = ("malignant", "benign") if site_id == "ch-zurich" else ("M", "B")
    for record, label in zip(features[:, :10], labels):
        if site_id == "ch-zurich" and label == 1.0 and rng.random() < 0.6:
            continue  # the rare class: this site keeps about 5% positive records
        cells: list[str | float] = [round(float(v), 5) for v in record]
        if site_id == "de-berlin" and rng.random() < 0.08:
            cells[1] = "?"
        if site_id == "fr-lyon" and rng.random() < 0.10:
            cells[4] = 0
        cells.append(_size_band(float(record[0]), band_codes))
        cells.append(diagnosis[0] if label == 1.0 else diagnosis[1])
        rows.append(cells)
    if site_id == "gb-leeds":
        drop = header.index("symmetry")
        rows = [row[:drop] + row[drop + 1 :] for row in rows]
    return rows


def write_extracts(folder: Path) -> list[Path]:
    """Write the four sites' extracts into ``folder``; return their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for site_id in PARTITIONS:
        rows = site_rows(site_id)
        if site_id == "gb-leeds":
            import pyarrow as pa
            import pyarrow.parquet as pq

            header = [str(c) for c in rows[0]]
            table = pa.table({name: [row[i] for row in rows[1:]] for i, name in enumerate(header)})
            path = folder / f"{site_id}.parquet"
            pq.write_table(table, path, row_group_size=64)
        else:
            path = folder / f"{site_id}.csv"
            with path.open("w", newline="", encoding="utf-8") as handle:
                csv.writer(handle, lineterminator="\n").writerows(rows)
        written.append(path)
    return written


if __name__ == "__main__":  # pragma: no cover - a maintainer's tool
    for written_path in write_extracts(Path(sys.argv[1] if len(sys.argv) > 1 else "examples/extract-sites")):
        print(written_path)
