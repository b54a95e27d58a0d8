"""Wiring: builds sources from config and runs one recommendation cycle."""
