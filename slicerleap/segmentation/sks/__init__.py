"""SKS (Skip and Skip, seed method): the 2.5D Swin V2 dual-encoder net, its two-stage slice trainer (with the MONAI
U-Net baseline in the same loop) and the lesion-contrast mirroring its trainer can add."""
