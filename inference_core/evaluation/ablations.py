"""The ablations of `facealbedo evaluate`: one part of the method switched off through the stages' settings.

Kept free of heavy imports so that the command line can list them quickly.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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
    "photometric-fit": Ablation("fit with the robust photometric term on (landmarks only by default)",
                                fit={"photometric": True, "robust": True}),
    "photometric-fit-no-robust": Ablation("fit with the photometric term but no outlier down-weighting",
                                          fit={"photometric": True, "robust": False}),
    "no-photometric-fit": Ablation("fit to landmarks only (no photometric term)", fit={"photometric": False}),
    "identity-20": Ablation("20 instead of 60 identity modes", fit={"identity_modes": 20}),
    "no-symmetry": Ablation("completion without mirror symmetry (prior only where unseen)",
                            prior={"symmetry": False}),
    "regions-prior": Ablation("region-colour prior instead of the learned PCA prior (same as the defaults "
                              "while no basis is installed)", prior={"use_learned_basis": False}),
    "no-refine": Ablation("no detail refinement: the prior-stage albedo is final", skip_refine=True),
    "no-detailed-illumination": Ablation("refine with the global SH only (no per-texel illumination)",
                                         refine={"detailed_illumination": False}),
    "no-albedo-symmetry-loss": Ablation("refine without the albedo symmetry loss",
                                        refine={"loss_weights.albedo_symmetry": 0.0}),
}
