"""Stage 1: datasets, from a reference on the command line to tensors in memory (references,
adapters, file datasets, splits, preprocessing, the tensor cache, on-device augmentation, text)."""
