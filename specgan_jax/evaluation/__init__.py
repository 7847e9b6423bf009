"""Sample quality: metrics, feature spaces, real splits, the evaluator, its report, periodic
evaluation. Given generated samples or a generate function; never imports training.
"""
