"""SKS, "Skip and Skip" (METHODS.md §1): the 2.5D Swin V2 dual-encoder net, its two-stage trainer (the MONAI U-Net
baseline runs in the same loop) and the lesion-contrast mirroring the trainer can add."""
