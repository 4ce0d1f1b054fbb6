"""Shared helpers: distributed communication, logging, file writing."""
