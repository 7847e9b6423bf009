"""Console entry points: argparse lives here and nowhere else; each main() catches SpecganError
once.
"""
