"""The ground both roles stand on: what the coordinator and every site must agree on, once.

``trialcore`` holds the trial contract (the spec model, the facts policies judge, the spec
hash), the wire protocol (every message key, record name and refusal reason), the run and
state folder layout, the audit chain and its verification, canonical JSON and atomic files,
the root errors with the one table of exit codes, and the privacy accountant.

It must never import ``sandbox``, ``participants``, ``policies`` or ``monitoring``, nor Flower
or torch at import time (a test enforces this): a hospital's reviewer reads this package and
``participants`` and nothing of the coordinator.
"""
