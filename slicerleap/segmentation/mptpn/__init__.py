"""MPTPN (seed 001): text-prompted 2D segmentation — the net, its trainer and prior pre-training, the frozen text
encoder, the prompt language (prompts written from masks, clicks and boxes) and prompted whole-volume inference."""
