"""MFormer (Accelerated MRI Reconstruction via Dynamic Deformable Alignment Based Transformer): the parts the paper
invents, written here; the rest (Swin blocks, data consistency, coil reduce/expand) from MONAI and reconstruction/."""
