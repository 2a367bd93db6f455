"""What follows a segmentation: particle instances and statistics, scores against manual masks,
local thickness of nanowires."""
