"""Segmentation engine: model-card driven inference and a MONAI U-Net trainer (the baseline the
seed methods build on)."""
