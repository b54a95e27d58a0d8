"""The Audit page's reads: one page of audit events, all of them streamed (the export), and
the values each filter offers."""

from __future__ import annotations

from collections.abc import Iterator

from mimir_limit_optimizer.controller.ui_parts import ServiceParts
from mimir_limit_optimizer.store import AuditEvent, StoreError
from mimir_limit_optimizer.store.queries import AuditFilter, audit_facets, audit_page, audit_stream
from mimir_limit_optimizer.web.ui.model import AuditQuery, AuditRow, Page, UiError


def _row(event: AuditEvent) -> AuditRow:
    return AuditRow(
        event.id,
        event.timestamp,
        event.level,
        event.category,
        event.component,
        event.action,
        event.tenant,
        dict(event.details),
    )


def _filter(q: AuditQuery) -> AuditFilter:
    return AuditFilter(q.tenant, q.action, q.category, q.component, q.since, q.until)


class AuditReader:
    def __init__(self, parts: ServiceParts) -> None:
        self.p = parts

    def page(self, query: AuditQuery) -> Page[AuditRow]:
        if query.page < 1 or not 1 <= query.per_page <= 500:
            raise UiError("page must be >= 1 and perPage between 1 and 500")
        try:
            rows, total = audit_page(
                self.p.store,
                _filter(query),
                offset=(query.page - 1) * query.per_page,
                limit=query.per_page,
            )
        except StoreError as exc:
            raise UiError(f"the store could not be read: {exc}", status=503) from exc
        return Page(tuple(_row(e) for e in rows), total, query.page, query.per_page)

    def stream(self, query: AuditQuery) -> Iterator[AuditRow]:
        for event in audit_stream(self.p.store, _filter(query)):
            yield _row(event)

    def facets(self) -> dict[str, tuple[str, ...]]:
        try:
            return audit_facets(self.p.store)
        except StoreError:
            return {}
