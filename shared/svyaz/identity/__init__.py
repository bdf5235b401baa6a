"""Identifier kinds, their policies and their normalization rules."""
