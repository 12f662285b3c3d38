"""Affine pre-alignment with SimpleITK (moments initialisation, Mattes MI, multi-resolution)."""
from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from ..io.image_io import volume_to_sitk
from ..io.transform_io import sitk_transform_to_ras_matrix
from ..volume import Volume


def affine_register(fixed: Volume, moving: Volume, iterations: int = 100, report=lambda *a, **k: None) -> np.ndarray:
    """4x4 RAS matrix A with moving position = A @ fixed position (the resampling direction)."""
    f = sitk.Cast(volume_to_sitk(fixed), sitk.sitkFloat32)
    m = sitk.Cast(volume_to_sitk(moving), sitk.sitkFloat32)
    initial = sitk.CenteredTransformInitializer(f, m, sitk.AffineTransform(3), sitk.CenteredTransformInitializerFilter.MOMENTS)
    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMattesMutualInformation(32)
    reg.SetMetricSamplingStrategy(reg.RANDOM)
    reg.SetMetricSamplingPercentage(0.1, seed=7)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetOptimizerAsRegularStepGradientDescent(1.0, 1e-4, iterations, relaxationFactor=0.6)
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetShrinkFactorsPerLevel([4, 2, 1])
    reg.SetSmoothingSigmasPerLevel([2, 1, 0])
    reg.SetInitialTransform(initial, inPlace=False)
    reg.AddCommand(sitk.sitkIterationEvent, lambda: report(None, "affine", f"affine iteration {reg.GetOptimizerIteration()}"))
    transform = reg.Execute(f, m)
    return sitk_transform_to_ras_matrix(transform)
