"""Targets: where runtime overrides are read from and written to (a file, a ConfigMap)."""
