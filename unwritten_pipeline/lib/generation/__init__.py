"""Synthetic training-data generation: schemas, prompts, profiles and the batch runner."""
