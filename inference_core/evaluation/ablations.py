"""The ablations of `facealbedo evaluate`: one part of the method switched off through the stages' settings.

Kept free of heavy imports so that the command line can list them quickly.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass, field, replace
from typing import Any

from inference_core.errors import ErrorCode, FaceAlbedoError

STAGES_WITH_SETTINGS = ("fit", "prior", "refine")


@dataclass(frozen=True)
class Ablation:
    """One part of the method switched off: overrides of the stages' settings, or the refine stage skipped.

    Keys of `fit`, `prior`, `refine` are field names of FitSettings, PriorSettings, RefineSettings; a
    dotted key reaches into a nested dataclass (`loss_weights.albedo_symmetry`).
    """

    description: str
    fit: dict[str, Any] = field(default_factory=dict)
    prior: dict[str, Any] = field(default_factory=dict)
    refine: dict[str, Any] = field(default_factory=dict)
    skip_refine: bool = False


ABLATIONS: dict[str, Ablation] = {
    "no-robust-fit": Ablation("fit with the photometric term but no outlier down-weighting (hair, hands, "
                              "shadows pull on the fit and stay trusted)", fit={"robust": False}),
    "free-light-colour": Ablation("no pull of the fitted light towards grey (skin and light colour trade off "
                                  "freely)", fit={"light_colour_weight": 0.0}),
    "no-photometric-fit": Ablation("fit to landmarks only (no photometric term)", fit={"photometric": False}),
    "identity-20": Ablation("20 instead of 60 identity modes", fit={"identity_modes": 20}),
    "no-symmetry": Ablation("completion without mirror symmetry (prior only where unseen)",
                            prior={"symmetry": False}),
    "regions-prior": Ablation("region-colour prior instead of the learned PCA prior (same as the defaults "
                              "while no basis is installed)", prior={"use_learned_basis": False}),
    "no-refine": Ablation("no detail refinement: the prior-stage albedo is final", skip_refine=True),
    "no-detailed-illumination": Ablation("refine with the global SH only (no per-texel illumination)",
                                         refine={"detailed_illumination": False}),
    "free-illumination-colour": Ablation("refine without the pull of the illumination map towards the global "
                                         "light's colour", refine={"loss_weights.illumination_colour": 0.0}),
    "no-albedo-symmetry-loss": Ablation("refine without the albedo symmetry loss",
                                        refine={"loss_weights.albedo_symmetry": 0.0}),
}


def parse_overrides(assignments: tuple[str, ...] | list[str]) -> dict[str, dict[str, Any]]:
    """`STAGE.FIELD=VALUE` strings (e.g. `refine.iterations=30`) -> {stage: {field: value}}.

    VALUE is read as a Python literal (number, True/False, None, quoted string), else taken as text.
    """
    parsed: dict[str, dict[str, Any]] = {stage: {} for stage in STAGES_WITH_SETTINGS}
    for assignment in assignments:
        target, equals, text = assignment.partition("=")
        stage, dot, name = target.partition(".")
        if not (equals and dot and name) or stage not in parsed:
            raise FaceAlbedoError(ErrorCode.USAGE, f"cannot read setting {assignment!r}: write STAGE.FIELD=VALUE "
                                  f"with STAGE one of {', '.join(STAGES_WITH_SETTINGS)}, e.g. refine.iterations=30")
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = text
        parsed[stage][name] = value
    return parsed


def with_overrides(ablation: Ablation, assignments: tuple[str, ...] | list[str]) -> Ablation:
    """The ablation with `STAGE.FIELD=VALUE` settings applied on top (they win over the ablation's own)."""
    parsed = parse_overrides(assignments)
    return replace(ablation, fit={**ablation.fit, **parsed["fit"]}, prior={**ablation.prior, **parsed["prior"]},
                   refine={**ablation.refine, **parsed["refine"]})
