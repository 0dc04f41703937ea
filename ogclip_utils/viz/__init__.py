"""Figures: shared drawing primitives (:mod:`.draw`) and one module per stage.

``viz.overlay``, ``viz.colorize``, ``viz.show_points`` … are the primitives every figure uses
(re-exported from :mod:`ogclip_utils.viz.draw`); ``viz.dense`` (notebook 02),
``viz.grounding`` (notebook 01), ``viz.refine`` (notebooks 03–04), ``viz.og_clip`` (notebook 05), ``viz.explain`` (the 18 steps) and ``viz.benchmark`` (notebook 06) draw the figures of their
stage and return open ``Figure`` objects.
"""
from .draw import (class_colours, colorize, curve, example_figure, heatmap, image_grid, infonce_figure, legend_patches,  # noqa: F401
                   mask_overlay, overlay, palette, scene_figure, show_box, show_points)
from . import benchmark, dense, explain, grounding, og_clip, refine  # noqa: E402,F401
