"""How many series a trial exports per site, and why it depends on the federation's size.

A regulator's Prometheus stores every series of every run, and the coordinator renders every
series on every scrape (prometheus-client: about 10 µs a sample on 2 cores). A pilot of a few
institutions can afford every per-site detail; a federation of 1,000 sites cannot: zero-initialised
site x rule and site x reason counters alone were about 63,000 samples and a 0.8 s scrape.

Up to :data:`FULL_DETAIL_MAX_SITES` sites a trial exports everything (``detailed``):

* every event counter starts at 0 for every site x reason, site x rule and site;
* ``sandbox_privacy_budget_exhausted`` is 0 for every site until it becomes 1;
* each site's absolute privacy figures (dataset and trial epsilon spent and budget, delta) and its
  train-split accuracy and loss.

Above it (``compact``), per site only what an alert or the fairness view acts on:

* ``sandbox_privacy_budget_used_ratio{budget}`` (both budgets) and the test-split
  ``sandbox_site_accuracy`` and ``sandbox_site_loss``, once measured;
* event counters and ``sandbox_privacy_budget_exhausted`` appear at the site's first event (a
  series that appears is caught by the alert rules' ``unless ... offset`` term, see
  ``monitoring/prometheus/alerts.yml``), so a quiet site costs nothing;
* the absolute figures stay in ``report.json`` and the sites' ledgers.

Trial-level series are the same in both. ``make bench`` (key ``scale``) measures the scrape of a
1,000-site trial against a 0.1 s goal.
"""

from __future__ import annotations

FULL_DETAIL_MAX_SITES = 100
"""Largest federation (sites) that exports every per-site series; larger ones export the compact set."""


def exports_full_detail(num_sites: int, *, max_sites: int = FULL_DETAIL_MAX_SITES) -> bool:
    """True when a trial of ``num_sites`` sites exports every per-site series (see module docstring)."""
    return num_sites <= max_sites
