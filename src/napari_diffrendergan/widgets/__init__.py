"""napari dock widgets: thin shells that turn layers into core calls and results into layers."""

from ._gan import GanTrainingWidget
from ._patches import PatchSelectionWidget
from ._scene_prior import ScenePriorWidget
from ._segmentation import SegmentationWidget
from ._synthetic import SyntheticDataWidget
from ._thickness import ThicknessAnalysisWidget

__all__ = [
    "GanTrainingWidget",
    "PatchSelectionWidget",
    "ScenePriorWidget",
    "SegmentationWidget",
    "SyntheticDataWidget",
    "ThicknessAnalysisWidget",
]
