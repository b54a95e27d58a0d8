"""Sources: where usage comes from (a real Prometheus/Mimir, or a synthetic cluster)."""
