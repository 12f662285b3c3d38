"""Federated training on Flower: each site trains on its own data; only model weights leave a site."""
