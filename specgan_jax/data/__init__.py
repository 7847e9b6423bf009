"""Files -> normalised device batches: CSV parsing and its cache, moments, normalisation,
augmentation, the sampler, the demo data.
"""
