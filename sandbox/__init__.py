"""The coordinator: it runs a trial, never sees a record, and answers to the regulator.

Holds the Flower ServerApp (:mod:`sandbox.server_app`), the governed strategy that wraps the
trial's Flower strategy (:mod:`sandbox.governed_strategy`) with update screening and graduated
enforcement, the trial resolved once per command (:mod:`sandbox.resolved_trial`), pre-flight and
consent, the recorder that keeps the audit chain, metrics and report, and the ``sandbox`` CLI.

It must never read a site's records or take a site's settings into the trial, and no other
package imports it: ``participants`` (the site) and ``policies`` stand below it.
"""
