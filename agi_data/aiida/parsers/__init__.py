"""Parsers of agi-data."""
