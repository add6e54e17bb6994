"""Evaluation on human-labelled golden sets: loaders, metrics, baselines, the evaluation file."""
