"""Analysis-by-synthesis fit of the morphable head to one photo.

    from inference_core.fitting import FitSettings, fit
    face_fit = fit(photo, landmarks, load_face_model(), FitSettings(photometric=True, robust=True))

Stages (fit.py): closed-form pose from the landmarks (initial_pose.py); Adam on pose, then shape and
expression against the landmarks with the jaw on the silhouette (landmark_term.py); then everything,
with SH lighting and region albedo, against a robust photometric term on the skin (photometric_term.py),
with priors (priors.py). `rendering.render_fit` re-renders a FaceFit for looking; `head_pose` converts
the fitted rotation to AFLW2000-3D's pose angles.
"""
from inference_core.fitting.fit import fit
from inference_core.fitting.settings import FitSettings

__all__ = ["FitSettings", "fit"]
