"""Segmentation engine: one subpackage per method, on shared parts at the top. sks/ (2.5D Swin V2 dual encoder and
its two-stage trainer), mptpn/ (text-prompted MPTPN) and teacher_student/ (box-guided teacher, student) each hold their
nets, training and method-only helpers, and import only the top, never each other. At the top: model-card inference
(inference.py, predict_case included), the shared 2.5D training recipe (slice_training.py), slice data, boxes,
balanced losses, metrics, post-processing, label specs, and the 3D MONAI U-Net trainer (unet_trainer.py)."""
