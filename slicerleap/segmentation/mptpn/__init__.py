"""MPTPN (METHODS.md §2): text-prompted 2D segmentation — the net, its trainer and SimSiam pre-training, the frozen
text encoder, the prompt language (prompts written from masks, clicks and boxes) and prompted volume inference."""
