"""Analysis-by-synthesis fit of the morphable head to one photo: `fit(photo, landmarks, model) -> FaceFit`."""
from inference_core.fitting.fit import fit
from inference_core.fitting.settings import FitSettings

__all__ = ["FitSettings", "fit"]
