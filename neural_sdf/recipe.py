"""The reconstruction recipe: ``FitOptions`` and the one place that resolves its "auto" settings from data.

A single fit, a batch item and a scene tile all get their first-layer ``w0`` and normal weight
here (``resolve_recipe``), from the cloud's density and where its normals came from; which of
those a user fixed by hand is recorded in ``FitOptions.adapt_w0`` / ``adapt_normal_weight``
(``keep_explicit``), whatever the front end (flags, manifest columns, script arguments).
"""

import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Iterable

from .config import (
    LossWeights,
    SamplingConfig,
    ScanConfig,
    SirenConfig,
    TrainConfig,
    default_sdf_sampling,
    default_sdf_siren,
    default_sdf_train,
    default_sdf_weights,
    density_w0_first,
)

__all__ = ["FitOptions", "TRUSTED_NORMALS", "resolve_recipe", "keep_explicit", "ADAPTED_SETTINGS"]

log = logging.getLogger(__name__)

TRUSTED_NORMALS = ("given", "given-flipped", "given-repaired")
"""``PreparedCloud.normals_from`` values whose normals get the recipe's full normal weight."""


@dataclass(frozen=True)
class FitOptions:
    """Everything that determines a fit (saved with the model).

    The defaults are the ``--quality default`` recipe, chosen by measurement (scripts/README.md, "Choosing
    the defaults"); they differ from the bare configs' defaults (the paper's settings) in network
    width, steps, learning-rate schedule and the share of off-surface samples.
    """

    siren: SirenConfig = field(default_factory=default_sdf_siren)
    train: TrainConfig = field(default_factory=default_sdf_train)
    sampling: SamplingConfig = field(default_factory=default_sdf_sampling)
    weights: LossWeights = field(default_factory=default_sdf_weights)
    scan: ScanConfig = field(default_factory=ScanConfig)
    adapt_w0: bool = True
    """Lower the first-layer ``w0`` toward the paper's 30 on sparse clouds (``density_w0_first``);
    the value used is saved in the model's options. The CLI turns this off when ``--w0-first`` is given."""
    adapt_normal_weight: bool = True
    """Use the paper's normal weight (``LossWeights().normal``, 100) when the normals were not given
    with the input in a consistent state (estimated, or re-oriented because they disagreed): such
    normals are smoothed guesses, and weighting them 10x made a noisy scorpion scan worse (scripts/README.md,
    "Choosing the defaults"). The value used is saved in the model's options. The CLI turns this off
    when ``--weight-normal`` is given."""




ADAPTED_SETTINGS = {"siren.w0_first": "adapt_w0", "weights.normal": "adapt_normal_weight"}
"""Settings the recipe adapts to the data, and the ``FitOptions`` flag that an explicit value turns off."""


def keep_explicit(options: FitOptions, explicit: Iterable[str]) -> FitOptions:
    """Turn off the adaptation of every setting the user gave explicitly.

    Args:
        options: the options (with the explicit values already in them).
        explicit: dotted names of the settings the user set (``"siren.w0_first"``,
            ``"weights.normal"``, ...; others are ignored).

    Returns:
        ``options`` with ``adapt_w0`` / ``adapt_normal_weight`` False where their setting is explicit.
    """
    given = set(explicit)
    return dataclasses.replace(options, **{flag: False for key, flag in ADAPTED_SETTINGS.items() if key in given})


def resolve_recipe(options: FitOptions, *, spacing: float, normals_from: str) -> FitOptions:
    """Resolve the data-dependent settings of a fit.

    Args:
        options: the recipe (``adapt_*`` say which settings may follow the data).
        spacing: the cloud's median nearest-neighbour spacing in the model's normalized units
            (``geometry.point_spacing``); ignored unless ``options.adapt_w0``.
        normals_from: where the normals come from (``PreparedCloud.normals_from``).

    Returns:
        The options to fit with: first-layer ``w0`` lowered on sparse clouds
        (``config.density_w0_first``); the paper's normal weight for normals that were not given
        in a consistent state. Each change is logged.
    """
    if options.adapt_w0:
        w0_first = density_w0_first(spacing, options.siren.w0_first)
        if w0_first != options.siren.w0_first:
            log.info("sparse cloud (median spacing %.4f of the normalized cube): first-layer w0 %.1f instead of %.1f",
                     spacing, w0_first, options.siren.w0_first)
            options = dataclasses.replace(options, siren=dataclasses.replace(options.siren, w0_first=w0_first))
    paper_normal = LossWeights().normal
    if options.adapt_normal_weight and normals_from not in TRUSTED_NORMALS and options.weights.normal > paper_normal:
        log.info("normals %s, not given: normal weight %g instead of %g", normals_from, paper_normal, options.weights.normal)
        options = dataclasses.replace(options, weights=dataclasses.replace(options.weights, normal=paper_normal))
    return options
