"""The corruption names and create_c's parameter tables (severity 1..5 per resolution).

The values are those of hendrycks/robustness ``ImageNet-C/create_c``:
``make_imagenet_c.py`` (``res='imagenet'``, meant for 224x224 images after
Resize(256)+CenterCrop(224)) and ``make_cifar_c.py`` (``res='cifar'``, 32x32).
Which corruptions run on the device and which on the host is decided here too
(``is_device``), since spatter switches between the two by severity.

NumPy only (no JAX code here).
"""
from __future__ import annotations

import numpy as np

# The 15 corruptions mCE averages over and the 4 extra ones: one list, kept
# with the metric (the on-disk ImageNet-C loader reads it there too).
from jaxbench.metrics.imagenet_c import BENCHMARK, EXTRA

ALL = BENCHMARK + EXTRA
RESOLUTIONS = ("imagenet", "cifar")
HOST_ONLY = ("jpeg_compression", "motion_blur", "snow", "frost")

# create_c parameter tables, severity 1..5 (make_imagenet_c.py, make_cifar_c.py).
PARAMS = {
    "imagenet": {
        "gaussian_noise": [.08, .12, 0.18, 0.26, 0.38],
        "shot_noise": [60, 25, 12, 5, 3],
        "impulse_noise": [.03, .06, .09, 0.17, 0.27],
        "speckle_noise": [.15, .2, 0.35, 0.45, 0.6],
        "gaussian_blur": [1, 2, 3, 4, 6],
        # (sigma, max_delta, iterations)
        "glass_blur": [(0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2)],
        # (radius, alias_blur)
        "defocus_blur": [(3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5)],
        # (radius, sigma)
        "motion_blur": [(10, 3), (15, 5), (15, 8), (15, 12), (20, 15)],
        "zoom_blur": [np.arange(1, 1.11, 0.01), np.arange(1, 1.16, 0.01),
                      np.arange(1, 1.21, 0.02), np.arange(1, 1.26, 0.02),
                      np.arange(1, 1.31, 0.03)],
        # (strength, wibble decay)
        "fog": [(1.5, 2), (2., 2), (2.5, 1.7), (2.5, 1.5), (3., 1.4)],
        # (image weight, frost weight)
        "frost": [(1, 0.4), (0.8, 0.6), (0.7, 0.7), (0.65, 0.7), (0.6, 0.75)],
        # (loc, scale, zoom, threshold, blur radius, blur sigma, image weight)
        "snow": [(0.1, 0.3, 3, 0.5, 10, 4, 0.8), (0.2, 0.3, 2, 0.5, 12, 4, 0.7),
                 (0.55, 0.3, 4, 0.9, 12, 8, 0.7), (0.55, 0.3, 4.5, 0.85, 12, 8, 0.65),
                 (0.55, 0.3, 2.5, 0.85, 12, 12, 0.55)],
        # (loc, scale, sigma, threshold, intensity or mud sigma, mud?)
        "spatter": [(0.65, 0.3, 4, 0.69, 0.6, 0), (0.65, 0.3, 3, 0.68, 0.6, 0),
                    (0.65, 0.3, 2, 0.68, 0.5, 0), (0.65, 0.3, 1, 0.65, 1.5, 1),
                    (0.67, 0.4, 1, 0.65, 1.5, 1)],
        "contrast": [0.4, .3, .2, .1, .05],
        "brightness": [.1, .2, .3, .4, .5],
        # (saturation scale, shift)
        "saturate": [(0.3, 0), (0.1, 0), (2, 0), (5, 0.1), (20, 0.2)],
        "jpeg_compression": [25, 18, 15, 10, 7],
        "pixelate": [0.6, 0.5, 0.4, 0.3, 0.25],
        # (alpha, sigma, affine jitter); "244 should have been 224" (create_c).
        "elastic_transform": [(244 * 2, 244 * 0.7, 244 * 0.1),
                              (244 * 2, 244 * 0.08, 244 * 0.2),
                              (244 * 0.05, 244 * 0.01, 244 * 0.02),
                              (244 * 0.07, 244 * 0.01, 244 * 0.02),
                              (244 * 0.12, 244 * 0.01, 244 * 0.02)],
    },
    "cifar": {
        "gaussian_noise": [0.04, 0.06, .08, .09, .10],
        "shot_noise": [500, 250, 100, 75, 50],
        "impulse_noise": [.01, .02, .03, .05, .07],
        "speckle_noise": [.06, .1, .12, .16, .2],
        "gaussian_blur": [.4, .6, 0.7, .8, 1],
        "glass_blur": [(0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)],
        "defocus_blur": [(0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)],
        "motion_blur": [(6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)],
        "zoom_blur": [np.arange(1, 1.06, 0.01), np.arange(1, 1.11, 0.01),
                      np.arange(1, 1.16, 0.01), np.arange(1, 1.21, 0.01),
                      np.arange(1, 1.26, 0.01)],
        "fog": [(.2, 3), (.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)],
        "frost": [(1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45)],
        "snow": [(0.1, 0.2, 1, 0.6, 8, 3, 0.95), (0.1, 0.2, 1, 0.5, 10, 4, 0.9),
                 (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9), (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85),
                 (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8)],
        "spatter": [(0.62, 0.1, 0.7, 0.7, 0.5, 0), (0.65, 0.1, 0.8, 0.7, 0.5, 0),
                    (0.65, 0.3, 1, 0.69, 0.5, 0), (0.65, 0.1, 0.7, 0.69, 0.6, 1),
                    (0.65, 0.1, 0.5, 0.68, 0.6, 1)],
        "contrast": [.75, .5, .4, .3, 0.15],
        "brightness": [.05, .1, .15, .2, .3],
        "saturate": [(0.3, 0), (0.1, 0), (1.5, 0), (2, 0.1), (2.5, 0.2)],
        "jpeg_compression": [80, 65, 58, 50, 40],
        "pixelate": [0.95, 0.9, 0.85, 0.75, 0.65],
        "elastic_transform": [(32 * 0, 32 * 0, 32 * 0.08), (32 * 0.05, 32 * 0.2, 32 * 0.07),
                              (32 * 0.08, 32 * 0.06, 32 * 0.06),
                              (32 * 0.1, 32 * 0.04, 32 * 0.05),
                              (32 * 0.1, 32 * 0.03, 32 * 0.03)],
    },
}


def table(name: str, severity: int, res: str = "imagenet"):
  """The create_c parameters of a corruption at one severity.

  Args:
    name: one of ``ALL``.
    severity: int 1..5.
    res: 'imagenet' (make_imagenet_c.py) or 'cifar' (make_cifar_c.py).
  Returns:
    The severity's entry of ``PARAMS[res][name]``: a number, a tuple, or (zoom
    blur) an array of zoom factors.
  Raises:
    ValueError: an unknown name or res, or a severity outside 1..5, named.
  """
  if res not in PARAMS:
    raise ValueError(f"unknown corruption parameter set res={res!r}; expected one of "
                     f"{RESOLUTIONS}")
  if name not in PARAMS[res]:
    raise ValueError(f"unknown corruption {name!r}; expected one of {', '.join(ALL)}")
  if not isinstance(severity, (int, np.integer)) or not 1 <= severity <= 5:
    raise ValueError(f"corruption {name!r}: severity must be an int in 1..5, got {severity!r}")
  return PARAMS[res][name][severity - 1]


def is_device(name: str, severity: int, res: str = "imagenet") -> bool:
  """Whether a corruption at one severity runs device-side (else host-side).

  Args:
    name, severity, res: as ``table``.
  Returns:
    False for ``HOST_ONLY`` and for spatter's water severities, else True.
  """
  if name in HOST_ONLY:
    return False
  if name == "spatter":
    return table(name, severity, res)[5] == 1   # mud: blurs and thresholds only
  return True

