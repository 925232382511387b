"""Which authenticated node is which site: the node keys a trial's federation publishes, as the SuperLink knows them.

Each site publishes its SuperNode's public key beside its node config in the trial's federation
(``<federation>/<site-id>.node.pub``; the private key stays at the site). The coordinator
registers exactly these keys with its SuperLink (``sandbox nodes register``), so no other node
can connect (SuperNode authentication), and binds each site to the node id its key was
registered under. ``sandbox run --engine deployment`` passes the bindings to the ServerApp
(run config ``node-bindings``): only a site's own node can commit for it before round 1, and a
reply from any other node for that site is rejected (:mod:`sandbox.site_bindings`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from participants.errors import KeyFileError
from participants.node_keys import load_node_public_key, node_fingerprint, node_key_bytes
from sandbox.superlink_control import RegisteredNode, SuperLinkClient
from trialcore.errors import BadInputError, Problem
from trialcore.spec_loading import LoadedSpec

NODE_KEY_SUFFIX = ".node.pub"


@dataclass(frozen=True)
class SiteNode:
    """A site, its published node key (fingerprint) and the node id the SuperLink gave that key."""

    site_id: str
    fingerprint: str
    node_id: int
    newly_registered: bool = False


def node_key_path(loaded: LoadedSpec, site_id: str) -> Path:
    """Where the federation keeps a site's published node key."""
    return loaded.federation_dir / f"{site_id}{NODE_KEY_SUFFIX}"


def _published_keys(loaded: LoadedSpec) -> dict[str, bytes]:
    """Each participant's published node key (PEM), every missing or bad key a problem."""
    problems: list[Problem] = []
    keys: dict[str, bytes] = {}
    for site_id in loaded.spec.site_ids:
        path = node_key_path(loaded, site_id)
        if not path.is_file():
            problems.append(
                Problem(
                    str(path),
                    "",
                    "no file",
                    f"{site_id}'s node public key, published by the site (participants node-key / sandbox certs node-key)",
                )
            )
            continue
        try:
            keys[site_id] = node_key_bytes(load_node_public_key(path))
        except KeyFileError as err:
            problems.extend(err.problems)
    if problems:
        raise BadInputError("The federation does not publish every site's node key", problems)
    return keys


def register_sites(loaded: LoadedSpec, client: SuperLinkClient) -> list[SiteNode]:
    """Register every participant's published node key (keys already registered are kept as they are)."""
    keys = _published_keys(loaded)
    known = {node.public_key: node for node in client.nodes() if node.status != "unregistered"}
    bound: list[SiteNode] = []
    for site_id, key in keys.items():
        fingerprint = node_fingerprint(load_node_public_key(node_key_path(loaded, site_id)))
        if key in known:
            bound.append(SiteNode(site_id, fingerprint, known[key].node_id))
            continue
        bound.append(SiteNode(site_id, fingerprint, client.register(key, name=site_id), newly_registered=True))
    return bound


def bound_nodes(loaded: LoadedSpec, nodes: list[RegisteredNode]) -> dict[str, int]:
    """Site id -> node id for every participant, from the SuperLink's registered nodes.

    Raises
    ------
    BadInputError
        A site publishes no usable key, or its key is not registered with the SuperLink.
    """
    keys = _published_keys(loaded)
    known = {node.public_key: node.node_id for node in nodes if node.status != "unregistered"}
    problems = [
        Problem(
            str(node_key_path(loaded, site_id)),
            "",
            "a key the SuperLink does not know",
            "a registered node key: run `sandbox nodes register` for this trial first",
        )
        for site_id, key in keys.items()
        if key not in known
    ]
    if problems:
        raise BadInputError("Not every site's node is registered with the SuperLink", problems)
    return {site_id: known[key] for site_id, key in keys.items()}


def bindings_text(bindings: dict[str, int]) -> str:
    """The run config value ``node-bindings``: ``site-id=node-id,...``."""
    return ",".join(f"{site}={node}" for site, node in bindings.items())


__all__ = ["SiteNode", "bindings_text", "bound_nodes", "node_key_path", "register_sites"]
