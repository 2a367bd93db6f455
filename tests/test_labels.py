import numpy as np
import pytest

from napari_diffrendergan.errors import InputError
from napari_diffrendergan.render.labels import contrast_check, semantic_mask


def _two_touching_squares():
    labels = np.zeros((40, 60), np.uint16)
    labels[10:30, 10:30] = 1
    labels[10:30, 30:50] = 2
    return labels


@pytest.mark.parametrize("thickness", [1, 2, 4])
def test_contour_has_the_configured_thickness(thickness):
    labels = _two_touching_squares()
    mask = semantic_mask(labels, thickness)
    assert set(np.unique(mask)) == {0, 1, 2}
    row = mask[20]  # through both squares
    # outer edge of square 1, the shared edge (both sides), outer edge of square 2
    assert (row[10 : 10 + thickness] == 2).all() and row[10 + thickness] == 1
    assert (row[30 - thickness : 30 + thickness] == 2).all()
    assert row[30 - thickness - 1] == 1 and row[30 + thickness] == 1
    assert (row[50 - thickness : 50] == 2).all() and (row[:10] == 0).all()
    assert ((mask > 0) == (labels > 0)).all()  # contour never eats into background


def test_no_contour_and_image_border():
    labels = np.zeros((20, 20), np.uint16)
    labels[:, :10] = 3  # touches the image border on three sides
    assert set(np.unique(semantic_mask(labels, 0))) == {0, 1}
    mask = semantic_mask(labels, 1)
    assert (mask[:, 9] == 2).all() and (mask[5, :9] == 1).all()


def test_contrast_filter_accepts_and_rejects_with_reasons():
    labels = np.zeros((10, 10), np.uint16)
    labels[2:5, 2:5] = 1
    image = np.full((10, 10), 0.4)
    image[labels > 0] = 0.5
    assert contrast_check(image, labels).accepted
    image[labels > 0] = 0.45  # only 12.5 % brighter
    check = contrast_check(image, labels)
    assert not check and "less than 15% above" in check.reason
    assert not contrast_check(image, np.zeros_like(labels)).accepted
    assert "whole image" in contrast_check(image, np.ones_like(labels)).reason


def test_contrast_filter_asks_dark_particles_to_be_darker():
    labels = np.zeros((10, 10), np.uint16)
    labels[2:5, 2:5] = 1
    image = np.full((10, 10), 0.4)
    image[labels > 0] = 0.3  # 25 % darker
    check = contrast_check(image, labels, polarity="dark")
    assert check and check.reason == "particles 25% darker than background"
    bright = contrast_check(image, labels)
    assert not bright and "bright particles need >=" in bright.reason
    image[labels > 0] = 0.36  # only 10 % darker
    check = contrast_check(image, labels, polarity="dark")
    assert not check and "less than 15% below" in check.reason
    assert "dark particles need <= 0.34" in check.reason
    image[labels > 0] = 0.5  # brighter: right for bright particles only
    assert contrast_check(image, labels) and not contrast_check(image, labels, polarity="dark")
    assert not contrast_check(np.zeros((10, 10)), labels, 0.0, "dark")  # black on black
    with pytest.raises(InputError, match="polarity 'grey'"):
        contrast_check(image, labels, polarity="grey")
