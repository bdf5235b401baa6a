"""Deployment helpers: the Cloud Functions source archive (see ``artifact``)."""

from .artifact import ArtifactError, build_function_source

__all__ = ["ArtifactError", "build_function_source"]
