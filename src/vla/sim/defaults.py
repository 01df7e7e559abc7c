"""Defaults of the MetaWorld wrapper (import-light, so the CLI can show them without mujoco).

Cameras and size were chosen by measurement (benchmarks/render.py, numbers in its JSON):
at 128x128 the fixed corner4 camera shows the goal marker over ~10 pixels and the push puck over
~15-18 (corner2, the usual choice, only ~4.5 and ~6), at the same cost per view, and the arm did not
hide them in the sampled expert episodes; gripperPOV adds a close-up of the table under the
gripper (puck ~100-700 pixels) at about half the cost. 96 px halves the marker area again;
160 px costs ~25-50% more per view.
"""

DEFAULT_CAMERAS: tuple[str, ...] = ("corner4", "gripperPOV")
DEFAULT_IMAGE_SIZE = 128
CONTROL_RATE_HZ = 80.0  # metaworld: timestep 0.0025 s x frame_skip 5 = 12.5 ms per step
