"""Settings of the morphable-head fit: iteration counts, model size, loss weights, ablation switches."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FitSettings:
    """How `fit()` works. The defaults are the product's; ablations toggle `robust` and `photometric`.

    Loss weights multiply terms that are already normalised: the landmark term is in (pixels of the
    face-size-normalised image)^2 (see `landmark_scale_px`), the photometric term in linear-RGB^2.
    """

    identity_modes: int = 60
    """How many of the model's 100 identity modes are fitted (the tail moves the head < 0.01 cm)."""

    rigid_iterations: int = 40
    """Pose and focal length alone against the landmarks, after the closed-form initial pose."""
    landmark_iterations: int = 100
    """Pose, identity and expression against the landmarks."""
    photometric_iterations: int = 60
    """Everything, with the photometric term on the skin pixels."""
    learning_rate: float = 0.03
    photometric_geometry_rate: float = 0.2
    """Step size of shape and pose in the photometric stage, relative to the landmark stages: the
    landmarks have placed the head already; the photometric term refines it."""

    focal_prior_factor: float = 1.2
    """Prior focal length in units of the photo's long side (a ~43 mm full-frame lens)."""
    focal_prior_sigma: float = 0.25
    """Standard deviation of log(focal / prior focal)."""

    landmark_weight: float = 1.0
    jaw_landmark_weight: float = 0.1
    """Relative weight of the 16 pose-dependent jaw landmarks. Detectors place them about 3x less surely
    than the inner ones (dlib on AFLW2000: ~10% vs ~3% of the face size), so 1/3^2 by inverse variance."""
    photometric_weight: float = 20.0
    identity_prior_weight: float = 0.05
    expression_prior_weight: float = 0.05
    albedo_prior_weight: float = 1.0
    lighting_prior_weight: float = 0.05
    albedo_scale_weight: float = 100.0
    """Weight of the pull of the skin's brightness to its starting value. Albedo and light trade off
    exactly in scale, so the photo cannot pull it; free, it drifted 2x between lights of one Yale face."""
    light_colour_weight: float = 10.0
    """Weight of the pull of the three colour channels' lighting towards their mean (a grey light).
    Skin colour and light colour trade off exactly per channel; left free, the light drifts to strong
    tints (green light on an orange face) that the albedo then cancels with implausible colours."""

    photometric: bool = True
    """Fit lighting and albedo to the skin pixels (and let them pull on shape and pose)."""
    robust: bool = True
    """Down-weight photometric outliers (hair, glasses, hands, hard shadows) by IRLS of Geman-McClure."""
    robust_scale: float = 0.25
    """Geman-McClure scale relative to the norm of the median skin colour (linear RGB): residuals much
    larger than this fraction of the skin's brightness count as outliers."""
    weight_smoothing_px: int = 5
    """Side (crop pixels, odd) of the neighbourhood over which the robust weights are averaged."""
    reweight_every: int = 10
    """Iterations between recomputing the IRLS weights."""

    crop_size_px: int = 160
    """Side of the square face crop that the photometric term renders and compares."""
