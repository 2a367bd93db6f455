"""The virtual microscope: particle meshes, their placement, the Mitsuba scene, deferred
shading and the labels of every render."""
