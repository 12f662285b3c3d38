"""Per-scan image enhancement (no training set): SR4ZCT through-plane super-resolution, with the
classical interpolators as baselines."""
