"""Alerting: the alert model, routing, channels and fault-tolerant delivery."""
