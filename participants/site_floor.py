"""The local training a site allows: the trial spec's settings, never weaker than the site's own policy."""

from __future__ import annotations

from dataclasses import dataclass

from policies import ComposedPolicy
from trialcore.spec import TrialSpec


@dataclass(frozen=True)
class DpSettings:
    """Record-level DP-SGD parameters (dimensionless noise multiplier, clipping norm in gradient L2 units)."""

    noise_multiplier: float
    max_grad_norm: float


def site_floor(spec: TrialSpec, policy: ComposedPolicy) -> tuple[int, DpSettings | None]:
    """Local epochs and DP-SGD settings the site applies: the spec's, never weaker than its own policy.

    Never more local epochs than the policy allows, never less noise, never a larger clipping
    norm, whatever the message asks. A policy that sets a noise floor gets DP even if the spec
    asks for none (the guard refuses such a spec first; this is the second line of defence).
    """
    privacy = spec.privacy
    epochs = min(spec.local_training.epochs, policy.max_local_epochs)
    if privacy.noise_multiplier is None or privacy.max_grad_norm is None:
        if policy.min_noise_multiplier > 0:
            return epochs, DpSettings(
                noise_multiplier=policy.min_noise_multiplier, max_grad_norm=policy.max_clipping_norm
            )
        return epochs, None
    return epochs, DpSettings(
        noise_multiplier=max(privacy.noise_multiplier, policy.min_noise_multiplier),
        max_grad_norm=min(privacy.max_grad_norm, policy.max_clipping_norm),
    )
