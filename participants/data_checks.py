"""A site's checks of its own data against the trial's data contract, and the profile it may publish.

``participants check-data SITE --trial SPEC`` and every message of a data-contract trial run the
same reading (:func:`participants.contract_data.read_contract_table`). What it finds:

- **problems** (the site cannot take part until they are fixed; exit 2): a contract column the
  extract lacks, a row that cannot be read, a value that is not a number or lies outside the
  contract's range, a code the contract does not know, no row left after the drop-row rules;
- **findings** (the site still trains, by the contract's rule): the share of values missing per
  feature, a feature constant or entirely missing at the site, rows dropped by a rule, a missing
  target, a class rarer than the minimum cohort or than 10% of the rows.

Each names the file, the column, how many rows and the rule. The **profile** is the counts only
(rows, train and test parts, each class, missing values per feature), each rounded down to the
site policy's ``data.count_granularity`` (10 without a policy) and shown only when it reaches the
minimum cohort (``null`` otherwise): what a site may choose to publish into the trial's report
(``publish_profile: true`` in its node config). Invariant: no count in a profile is finer than the
granularity it states.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from participants.contract_data import ContractSiteData, ReadTable, read_contract_table
from participants.released_values import COUNT_GRANULARITY, released_count
from participants.site_config import LoadedSiteConfig, TableSource
from trialcore.data_contract import CategoricalFeature, DataContract, NumericFeature
from trialcore.errors import Problem, show_text

RARE_CLASS_SHARE = 0.10
"""A class below this share of the site's rows is a finding (skewed labels)."""


@dataclass(frozen=True)
class DataCheck:
    """What the site's checks found (see the module docstring)."""

    problems: list[Problem]
    findings: list[Problem] = field(default_factory=list)
    profile: dict[str, Any] | None = None
    rows: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


def _shown(count: int, min_cohort_size: int, granularity: int) -> int | None:
    """A count as the profile shows it: rounded down to ``granularity``, or None below the minimum cohort."""
    shown = released_count(count, granularity)
    return shown if shown >= min_cohort_size else None


def check_contract_data(
    site: LoadedSiteConfig,
    source: TableSource,
    contract: DataContract,
    *,
    min_cohort_size: int,
    count_granularity: int = COUNT_GRANULARITY,
) -> DataCheck:
    """Every problem and finding of the site's data under ``contract``, and its profile if it has no problem."""
    read = read_contract_table(site, source, contract)
    problems = read.problems()
    if read.table is None:
        return DataCheck(problems=problems)
    findings = _findings(read, contract, min_cohort_size)
    if problems:
        return DataCheck(problems=problems, findings=findings, rows=read.table.rows_read)
    return DataCheck(
        problems=[],
        findings=findings,
        profile=data_profile(
            read.table.values,
            read.table.labels,
            contract=contract,
            not_collected=[name for name, column in read.table.columns.items() if column is None],
            num_test=math.ceil(site.config.test_fraction * read.table.labels.size),
            min_cohort_size=min_cohort_size,
            count_granularity=count_granularity,
        ),
        rows=read.table.rows_read,
    )


def _findings(read: ReadTable, contract: DataContract, min_cohort_size: int) -> list[Problem]:
    table = read.table
    assert table is not None
    found: list[Problem] = []
    rows = table.rows_read
    if table.target_missing:
        column = show_text(str(table.columns.get(contract.target.column) or contract.target.column))
        found.append(
            Problem(read.shown_as, f"column {column}: {table.target_missing} row(s)", "target missing", "row dropped")
        )
    for name, count in read.dropped.items():
        if count:
            column = show_text(str(table.columns.get(name)))
            found.append(
                Problem(
                    read.shown_as,
                    f"column {column}: {count} row(s)",
                    "value missing",
                    f"row dropped ({name}: drop-row)",
                )
            )
    kept = table.values.shape[0]
    for j, feature in enumerate(contract.features):
        column_name = table.columns.get(feature.name)
        column = show_text(column_name) if column_name is not None else "(not collected at this site)"
        values = table.values[:, j]
        missing = int(np.isnan(values).sum())
        observed = values[~np.isnan(values)]
        rule = f"{feature.name}: {feature.missing}"
        if kept and missing == kept:
            found.append(
                Problem(
                    read.shown_as,
                    f"column {column}: {kept} row(s)",
                    "entirely missing",
                    f"still trains by the rule ({rule})",
                )
            )
            continue
        if missing:
            share = missing / kept
            found.append(
                Problem(
                    read.shown_as,
                    f"column {column}: {missing} row(s)",
                    f"{share:.1%} missing",
                    f"imputed by the rule ({rule})",
                )
            )
        if observed.size > 1 and float(observed.min()) == float(observed.max()):
            value = _value_name(feature, float(observed[0]))
            found.append(
                Problem(
                    read.shown_as,
                    f"column {column}: {observed.size} row(s)",
                    f"constant {value}",
                    f"still trains ({rule})",
                )
            )
    positives = int(table.labels.sum())
    for label, count in (("positive", positives), ("negative", int(table.labels.size) - positives)):
        if rows and (count < min_cohort_size or count < RARE_CLASS_SHARE * table.labels.size):
            target = show_text(str(table.columns.get(contract.target.column) or contract.target.column))
            found.append(
                Problem(
                    read.shown_as,
                    f"column {target}: {count} row(s)",
                    f"{label} class {count / max(table.labels.size, 1):.1%} of rows",
                    f"class balance: at least {min_cohort_size} rows and {RARE_CLASS_SHARE:.0%} per class "
                    "(the site's AUROC is withheld below the minimum cohort)",
                )
            )
    return found


def _value_name(feature: object, value: float) -> str:
    if isinstance(feature, CategoricalFeature):
        return repr(feature.categories[int(value)])
    if isinstance(feature, NumericFeature):
        return f"{value:g} {feature.unit}"
    return f"{value:g}"


def data_profile(
    values: np.ndarray,
    labels: np.ndarray,
    *,
    contract: DataContract,
    not_collected: list[str],
    num_test: int,
    min_cohort_size: int,
    count_granularity: int = COUNT_GRANULARITY,
) -> dict[str, Any]:
    """The publishable counts of the site's kept rows (see the module docstring)."""
    count = int(labels.size)
    positives = int(labels.sum())

    def shown(value: int) -> int | None:
        return _shown(value, min_cohort_size, count_granularity)

    return {
        "min_cohort_size": min_cohort_size,
        "count_granularity": count_granularity,
        "rows": shown(count),
        "train": shown(count - num_test),
        "test": shown(num_test),
        "positive": shown(positives),
        "negative": shown(count - positives),
        "missing": {
            feature.name: shown(int(np.isnan(values[:, j]).sum())) for j, feature in enumerate(contract.features)
        },
        "not_collected": sorted(not_collected),
    }


def site_profile(
    data: ContractSiteData, source: TableSource, *, min_cohort_size: int, count_granularity: int
) -> dict[str, Any]:
    """The profile of a site's loaded data (train and test parts together), for the report."""
    return data_profile(
        np.concatenate([data.train_values, data.test_values]),
        np.concatenate([data.y_train, data.y_test]),
        contract=data.contract,
        not_collected=[f.name for f in data.contract.features if source.contract.column_of(f.name) is None],
        num_test=data.num_test,
        min_cohort_size=min_cohort_size,
        count_granularity=count_granularity,
    )
