"""The exit report's plots, drawn with matplotlib as inline SVG (no file, no network).

Three plots, each from report.json alone, so they show only what the report releases (a site
whose statistics were withheld for a small cohort has no point in any round):

* accuracy per site over rounds, with the pooled global accuracy;
* epsilon per site against its budget (this trial's; by kind of release when the report has it);
* rejected updates and refusals per round.

Each function returns the ``<svg>`` element as text (the XML prologue removed), with its text
kept as text (``svg.fonttype: none``) and ids salted by the plot's name so two plots on one page
never share an id.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: SVG only

from matplotlib import rc_context
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from sandbox.update_screening import SITE_REFUSED

_STYLE: Any = {"svg.fonttype": "none", "font.size": 9, "axes.spines.top": False, "axes.spines.right": False}
_SIZE_INCHES = (6.4, 3.2)


def _svg(figure: Figure, name: str) -> str:
    buffer = io.StringIO()
    salted: Any = {**_STYLE, "svg.hashsalt": name}
    with rc_context(salted):
        figure.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def _figure(height_inches: float = _SIZE_INCHES[1]) -> Figure:
    with rc_context(_STYLE):
        return Figure(figsize=(_SIZE_INCHES[0], height_inches))


def release_epsilon(value: Any) -> float:
    """A release kind's epsilon as the report gives it: a number, or an object with ``epsilon``; 0 if neither."""
    if isinstance(value, dict):
        value = value.get("epsilon")
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0


def accuracy_plot(report: Mapping[str, Any]) -> str:
    """Test accuracy of each site (released rounds only) and of the pooled global model, per round."""
    rounds: Sequence[Mapping[str, Any]] = report.get("rounds") or []
    figure = _figure()
    with rc_context(_STYLE):
        axes = figure.add_subplot()
        for site in report.get("sites", []):
            site_id = site["site_id"]
            points = [(r["round"], r["sites"][site_id]["test_accuracy"]) for r in rounds if site_id in r["sites"]]
            if points:
                axes.plot(*zip(*points), marker="o", markersize=3, linewidth=1.2, label=site_id)
        pooled = [(r["round"], r["global"]["test_accuracy"]) for r in rounds if r.get("global")]
        if pooled:
            axes.plot(*zip(*pooled), color="black", linewidth=2.2, label="global (pooled)")
        axes.set_xlabel("round")
        axes.set_ylabel("test accuracy (ratio)")
        axes.set_title("Test accuracy per site and pooled")
        if rounds:
            axes.set_xticks([r["round"] for r in rounds])
        if axes.get_legend_handles_labels()[0]:
            axes.legend(loc="lower right", fontsize=8, frameon=False)
        axes.grid(alpha=0.3)
    return _svg(figure, "accuracy")


def epsilon_plot(report: Mapping[str, Any]) -> str:
    """Each site's epsilon for this trial against the trial's budget (stacked by release kind if known)."""
    sites = report.get("sites", [])
    figure = _figure()
    with rc_context(_STYLE):
        axes = figure.add_subplot()
        names = [s["site_id"] for s in sites]
        positions = list(range(len(names)))
        by_release = [s["privacy"].get("trial_epsilon_by_release") for s in sites]
        kinds = sorted({kind for releases in by_release if isinstance(releases, dict) for kind in releases})
        if kinds:
            bottoms = [0.0] * len(names)
            for kind in kinds:
                heights = [release_epsilon((r or {}).get(kind)) for r in by_release]
                axes.bar(positions, heights, bottom=bottoms, width=0.6, label=f"spent: {kind}")
                bottoms = [b + h for b, h in zip(bottoms, heights, strict=True)]
        else:
            spent = [float(s["privacy"].get("trial_epsilon") or 0.0) for s in sites]
            axes.bar(positions, spent, width=0.6, color="#4c72b0", label="spent in this trial (training)")
        budgets = [float(s["privacy"].get("trial_epsilon_budget") or 0.0) for s in sites]
        axes.scatter(positions, budgets, marker="_", s=900, color="#c44e52", linewidths=2.5, label="budget", zorder=3)
        axes.set_xticks(positions, names)
        axes.set_ylabel("epsilon (at the trial's delta)")
        axes.set_title("Privacy spent per site against its budget for this trial")
        if axes.get_legend_handles_labels()[0]:
            axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=3, fontsize=8, frameon=False)
        axes.grid(axis="y", alpha=0.3)
    return _svg(figure, "epsilon")


def rejections_plot(report: Mapping[str, Any]) -> str:
    """Per round: refusals by sites, and updates rejected by the coordinator's screening."""
    rounds: Sequence[Mapping[str, Any]] = report.get("rounds") or []
    figure = _figure(2.4)
    with rc_context(_STYLE):
        axes = figure.add_subplot()
        numbers = [r["round"] for r in rounds]
        refused = [len(r.get("refusals") or []) for r in rounds]
        screened = [sum(x.get("reason") != SITE_REFUSED for x in r.get("rejections") or []) for r in rounds]
        axes.bar(numbers, refused, width=0.6, color="#dd8452", label="refused by a site")
        axes.bar(numbers, screened, bottom=refused, width=0.6, color="#c44e52", label="rejected by screening")
        axes.set_xlabel("round")
        axes.set_ylabel("updates")
        axes.set_title("Refusals and rejected updates per round")
        if numbers:
            axes.set_xticks(numbers)
        top = max([a + b for a, b in zip(refused, screened, strict=True)] + [1])
        axes.set_ylim(0, top + 0.5)
        axes.yaxis.set_major_locator(MaxNLocator(integer=True))
        if axes.get_legend_handles_labels()[0]:
            axes.legend(loc="upper right", fontsize=8, frameon=False)
        axes.grid(axis="y", alpha=0.3)
    return _svg(figure, "rejections")
