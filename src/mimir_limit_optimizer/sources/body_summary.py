"""One line about an HTTP answer body that is not the API's JSON, for error messages.

A wrong URL usually answers with an HTML page (a proxy's 404, Grafana's login page, a
directory listing): quoting its markup buries the message. Such a page is summarised by its
title and first heading; any other text is collapsed to one line and cut."""

from __future__ import annotations

import html
import re

__all__ = ["summarise_body"]

_TAGS = re.compile(r"<[^>]+>")
_SPACE = re.compile(r"\s+")
_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_HEADING = re.compile(r"<h1[^>]*>(.*?)</h1>", re.IGNORECASE | re.DOTALL)
_HTML_START = re.compile(r"^\s*(<!doctype html|<html|<head|<body)", re.IGNORECASE)


def _text(fragment: str) -> str:
    return _SPACE.sub(" ", html.unescape(_TAGS.sub(" ", fragment))).strip()


def summarise_body(text: str, content_type: str = "", limit: int = 200) -> str:
    """`an HTML page: "404 Not Found"` for a page; the text on one line otherwise."""
    if "html" in content_type.lower() or _HTML_START.match(text):
        parts: list[str] = []
        for pattern in (_TITLE, _HEADING):
            found = pattern.search(text)
            if found and (shown := _text(found.group(1))) and shown not in parts:
                parts.append(shown)
        what = " / ".join(parts)[:limit] if parts else "no title"
        return f'an HTML page ("{what}"), not a Prometheus API answer: check the URL'
    one_line = _SPACE.sub(" ", text).strip()
    if not one_line:
        return "empty body"
    return one_line if len(one_line) <= limit else one_line[: limit - 1] + "…"
