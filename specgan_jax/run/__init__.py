"""A run directory's artefacts: names and config.json, checkpoints, metrics log, previews,
torch export/import.
"""
