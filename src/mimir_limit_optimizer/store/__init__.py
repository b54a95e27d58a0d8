"""Persistent state: audit events, target revisions, engine checkpoints and the alert queue,
on SQLite (default) or PostgreSQL, through SQLAlchemy Core with versioned migrations."""

from mimir_limit_optimizer.store.audit import AuditLog
from mimir_limit_optimizer.store.errors import StoreError
from mimir_limit_optimizer.store.records import AuditEvent, QueuedAlert, Revision
from mimir_limit_optimizer.store.store import Store

__all__ = ["AuditEvent", "AuditLog", "QueuedAlert", "Revision", "Store", "StoreError"]
