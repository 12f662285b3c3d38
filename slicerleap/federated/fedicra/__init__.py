"""FedICRA (Zeng et al., MLMI 2023): personalised, weakly-supervised federated segmentation — the pieces the
paper invents (site-code conditioned U-Net with the SCR module, adaptive aggregation of the personalised
decoder, the sparse-label losses), used by SlicerLeap's Flower apps."""
