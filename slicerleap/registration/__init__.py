"""Deformable registration: affine pre-alignment (SimpleITK) and per-pair instance optimisation of a
displacement field (MONAI warp and losses). The seed networks (TM-DCA, NIO) build on this."""
