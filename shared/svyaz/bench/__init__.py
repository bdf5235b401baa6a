"""Benchmark tooling: a synthetic, seeded customer population and accuracy metrics for stitching."""

from .metrics import Accuracy, score
from .population import Population, generate_population

__all__ = ["Accuracy", "Population", "generate_population", "score"]
