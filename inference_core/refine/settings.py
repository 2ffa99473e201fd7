"""Settings of the detail refinement module: loss weights (shared with training) and optimisation knobs."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class LossWeights:
    """Weight of each term of `losses.refinement_loss`; a weight of 0 switches its term off (ablation).

    photometric               the re-render (albedo x per-texel SH shading) matches the unwrapped photo
    illumination_smoothness   neighbouring cells of the SH residual grid agree (lighting is smooth)
    illumination_residual     the residual stays small: the global SH explains most of the light
    illumination_colour       the residual keeps the global light's colour: local light changes brightness,
                              not hue, so colour differences stay in the albedo or in the error
    albedo_chromaticity       the albedo keeps the prior's per-texel colour (shadows change brightness)
    albedo_low_frequency      the albedo's blurred brightness follows the parametric prior's
    albedo_symmetry           left and right albedo agree where seen (robust, so moles may differ)
    albedo_gradient_sparsity  robust L1 on albedo gradients: albedo edges are sharp, lighting is smooth
    albedo_ratio_smoothness   the change from the prior-stage albedo is smooth unless the photo insists
    """

    photometric: float = 1.0
    illumination_smoothness: float = 0.1
    illumination_residual: float = 0.1
    illumination_colour: float = 10.0
    albedo_chromaticity: float = 0.3
    albedo_low_frequency: float = 2.0
    albedo_symmetry: float = 0.05
    albedo_gradient_sparsity: float = 0.005
    albedo_ratio_smoothness: float = 1.0

    def as_dict(self) -> dict[str, float]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class RefineSettings:
    """How `refine()` works. Ablations: zero a loss weight, or turn `detailed_illumination` off."""

    iterations: int = 150  # Adam steps of the test-time optimisation (0: network output or prior as is)
    learning_rate: float = 0.03
    working_resolution: int = 128  # texels per side the optimisation runs at (at most the UV resolution)
    grid_resolution: int = 32  # cells per side of the SH residual grid (the illumination map's detail)
    low_frequency_resolution: int = 32  # cells per side at which albedo brightness is compared to the prior
    detailed_illumination: bool = True  # False: global SH only (the residual grid stays 0)
    loss_weights: LossWeights = field(default_factory=LossWeights)
    weights: Path | None = None  # refinement network (safetensors) whose prediction starts the optimisation
    correct_head_tile: bool = True  # scale tile 1002 by the face tile's median albedo change (no colour jump)
