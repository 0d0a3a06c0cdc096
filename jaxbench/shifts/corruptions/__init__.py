"""ImageNet-C / CIFAR-10-C corruptions generated on the fly: 19 kinds x 5 severities.

The parameters are those of hendrycks/robustness ``ImageNet-C/create_c``:
``make_imagenet_c.py`` (``res='imagenet'``, meant for 224x224 images after
Resize(256)+CenterCrop(224)) and ``make_cifar_c.py`` (``res='cifar'``, 32x32).
The algorithms follow create_c; where create_c called ImageMagick (motion blur,
and the motion blur inside snow) they follow the NumPy re-implementation of the
``imagecorruptions`` package, the only runnable reference. Where that package
departs from create_c, create_c wins: elastic_transform is create_c's random
affine plus elastic field (the package rewrote it), frost crops the picture
unscaled (the package enlarges it by 1.1). create_c's quirks are kept: glass
blur's "swap" of NumPy pixel views is a copy, frost never picks frost6.jpg.

Device-side (jittable, vmapped over the batch, randomness from per-example keys):
  gaussian_noise shot_noise impulse_noise speckle_noise gaussian_blur glass_blur
  defocus_blur zoom_blur fog brightness contrast saturate pixelate
  elastic_transform, and spatter at the "mud" severities (4, 5).
Host-side (NumPy/OpenCV/PIL per image in the input pipeline, randomness from a
``np.random.Generator``):
  jpeg_compression motion_blur snow frost, and spatter at the "water" severities
  (1-3: Canny edges, a chamfer distance transform and histogram equalisation,
  sequential OpenCV algorithms that are used as they are).

Each device corruption is a pair ``sample(key, x, arrays, static) -> fields``
(all randomness) and ``apply(x, fields, arrays, static) -> x`` (deterministic),
so tests can feed the random fields the reference drew and compare outputs.
``arrays`` are numeric parameters (blur operators, ...) whose shapes do not
depend on the severity, so one compilation serves all five severities.

Generated corruptions are a *variant* of ImageNet-C, never the official files;
results carry ``provenance['source'] = 'generated'``. The official ImageNet-C
files were saved by create_c as ``Image.fromarray(np.uint8(img)).save(path,
quality=85, optimize=True)``: a JPEG at quality 85 after every corruption,
which changes the noise corruptions by 12-44/255 and shrinks their effect.
``jpeg_quality=85`` (the default of the ``imagenet_c`` family, whose goal is
comparability with on-disk ImageNet-C) adds that round trip to the generated
images: the uint8 output (truncated, as np.uint8) is encoded and decoded with
PIL at that quality (``optimize`` changes only the entropy coding, not the
pixels; PIL's libjpeg may differ slightly from the 2018 one). ``cifar10_c`` and
``corrupt`` default to ``jpeg_quality=None``: CIFAR-10-C was stored as uint8
arrays, no JPEG. The setting is part of the spec when it differs from the
family's default and always part of ``provenance``. Device corruptions run the
round trip on the host through ``jax.pure_callback``.

Modules (one job each):

  tables     names, create_c's parameter tables, device or host per severity
  image_ops  operator builders (NumPy) and device building blocks (JAX) with the
             reference libraries' boundary and rounding rules
  device     device kernels (params, sample, apply) per corruption
  host       host kernels (NumPy / OpenCV / PIL) per corruption
  frost      finding, loading and scaling the frost pictures
  shifts     DeviceCorruption / HostCorruption, ``make``, and the registered
             ``imagenet_c``, ``cifar10_c`` and ``corrupt`` shift specs

Importing this package registers the shifts in ``jaxbench.shifts.SHIFTS``.
"""
from jaxbench.shifts.corruptions.device import Kernel, device_params, kernel
from jaxbench.shifts.corruptions.frost import (
    FROST_ENV, FROST_FILES, FROST_USED, frost_dir, frost_texture)
from jaxbench.shifts.corruptions.host import (
    frost_np, jpeg_np, motion_blur_np, motion_blur_taps, snow_np, spatter_water_np)
from jaxbench.shifts.corruptions.shifts import (
    JPEG_DEFAULT, DeviceCorruption, HostCorruption, cifar10_c, corrupt, imagenet_c, make)
from jaxbench.shifts.corruptions.tables import (
    ALL, BENCHMARK, EXTRA, HOST_ONLY, PARAMS, RESOLUTIONS, is_device, table)

__all__ = [
    "ALL", "BENCHMARK", "EXTRA", "HOST_ONLY", "PARAMS", "RESOLUTIONS", "is_device", "table",
    "Kernel", "device_params", "kernel",
    "frost_np", "jpeg_np", "motion_blur_np", "motion_blur_taps", "snow_np", "spatter_water_np",
    "FROST_ENV", "FROST_FILES", "FROST_USED", "frost_dir", "frost_texture",
    "JPEG_DEFAULT", "DeviceCorruption", "HostCorruption", "cifar10_c", "corrupt",
    "imagenet_c", "make",
]
