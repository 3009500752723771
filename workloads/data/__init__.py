"""Data: the bakehouse sample set, the feature frame built from it, and validation before training."""
