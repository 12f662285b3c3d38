"""MRI reconstruction from undersampled Cartesian k-space (the SuperResolution module's image-restoration family):
readers for the fastMRI layout, undersampling masks, SigPy's zero-filled / SENSE / L1-wavelet baselines, and
simulated k-space from real anatomy (no raw k-space ships offline)."""
