"""The site: what a hospital or registry runs, reviews and trusts, on its own machine.

Holds the Flower ClientApp (:mod:`participants.client_app`) behind the site guard mod
(:mod:`participants.site_guard`), the site's node config, data connectors, local (DP-SGD)
training, the privacy ledger every release is charged to, the site's own audit chain, signed
approvals, and the ``participants`` CLI.

It must never import the coordinator (``sandbox``): every value a handler uses comes from the
trial spec it verified against its hash, or from the site's own config, policy and state, and
nothing leaves but model parameters and aggregates charged to the site's ledger.
"""
