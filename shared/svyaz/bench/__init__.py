"""Benchmark tooling: a synthetic, seeded customer population and accuracy metrics for stitching."""

from svyaz.bench.accuracy import Accuracy, score
from svyaz.bench.population import Population, generate_population

__all__ = ["Accuracy", "Population", "generate_population", "score"]
