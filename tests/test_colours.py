"""Colours that mean something: viz.class_colours, and the background found by name."""
import numpy as np

from ogclip_utils import data, viz


def test_shapes_classes_are_drawn_in_their_own_colour():
    pal = viz.class_colours(data.CLASS_NAMES)
    assert pal.shape == (data.NUM_CLASSES, 3) and pal.dtype == np.uint8
    assert tuple(pal[data.CLASS_NAMES.index("background")]) == viz.draw.BACKGROUND_RGB
    for name in data.CLASS_NAMES[1:]:
        colour, shape = name.split()
        rgb = pal[data.CLASS_NAMES.index(name)].astype(int)
        ref = np.asarray(data.COLOURS[colour], int)
        if shape == "circle":
            assert np.array_equal(rgb, ref), "the circle carries the colour itself"
        # the same hue family: the dominant channel of the named colour stays dominant
        assert np.argmax(rgb) == np.argmax(ref), f"{name} drawn as {rgb}"
    assert len({tuple(c) for c in pal}) == len(pal), "no two classes share a colour"


def test_background_is_found_by_name_not_by_index():
    vocab = ["cat", "background, floor, wall"]
    pal = viz.class_colours(vocab)
    assert tuple(pal[1]) == viz.draw.BACKGROUND_RGB and tuple(pal[0]) != viz.draw.BACKGROUND_RGB
    img = np.full((4, 4, 3), 200, np.uint8)
    lm = np.array([[0, 0, 1, 1]] * 4)
    out = viz.overlay(img, lm, vocabulary=vocab)
    assert (out[:, :2] != 200).any(), "the cat (class 0) is coloured"
    assert (out[:, 2:] == 200).all(), "the background (class 1) is left untouched"
    out = viz.overlay(img, np.where(lm == 0, 0, -1), vocabulary=vocab)
    assert (out[:, 2:] == 200).all(), "negative ids are left untouched"


def test_other_names_get_distinct_hues_and_colour_words_their_colour():
    pal = viz.class_colours(["dog", "tree", "red car", "sky"])
    assert len({tuple(c) for c in pal}) == 4
    assert tuple(pal[2]) == data.COLOURS["red"]


def test_legend_and_label_map_agree():
    names = ["cat", "background"]
    patch = viz.legend_patches(names, [0])[0]
    np.testing.assert_allclose(patch.get_facecolor()[:3], viz.class_colours(names)[0] / 255.0)
    np.testing.assert_array_equal(viz.colorize(np.zeros((2, 2), int), names)[0, 0], viz.class_colours(names)[0])
