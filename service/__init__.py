"""Parental-consent verification service."""
