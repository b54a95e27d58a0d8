"""Random runtime overrides files for the fast-path identity tests (seeded, bounded).

The files mix what the line reader understands (comments everywhere, blank lines, quoted and
unquoted tenant ids, every scalar spelling) with what it must leave to ruamel (nested values,
other top-level keys, flow style, anchors, odd indentation, duplicates)."""

from __future__ import annotations

import random

TENANTS = [
    "tenant-a",
    "tenant-b",
    "t1",
    "123",
    "0123",
    "true",
    "True",
    "a.b",
    "with space",
    "yes",
    "null",
    "1e6",
    "x_y",
    "0x10",
    "16",
    "team/one",
    "-dash",
    ".inf",
]
LIMITS = [
    "ingestion_rate",
    "ingestion_burst_size",
    "max_global_series_per_user",
    "compactor_blocks_retention_period",
    "ruler_max_rules_per_rule_group",
    "max_label_names_per_series",
    "unknown_limit_x",
]
VALUES = [
    "1000",
    "1_000",
    "1e6",
    "1.5",
    "0x10",
    "0o17",
    ".inf",
    "-1",
    "null",
    "~",
    "",
    "yes",
    "no",
    "true",
    "True",
    "'1000'",
    '"2000"',
    "30d",
    "1h30m",
    "0",
    "007",
    "some string",
    "'quoted ''q'''",
    '"dq"',
    "-.inf",
    "+5",
    "2.50",
]
COMMENTS = ["# note", "#x", "# a: b", "  # indented", "#", "# trailing  "]


def _key(rng: random.Random, tenant: str) -> str:
    style = rng.random()
    if style < 0.15:
        return "'" + tenant.replace("'", "''") + "'"
    if style < 0.25:
        return '"' + tenant + '"'
    return tenant


def _comment(rng: random.Random, indent: int) -> str:
    return " " * rng.choice([0, indent, 2, 6]) + rng.choice(COMMENTS)


def _junk(rng: random.Random, out: list[str], indent: int) -> None:
    for _ in range(rng.choice([0, 0, 0, 1, 2])):
        out.append(_comment(rng, indent) if rng.random() < 0.6 else rng.choice(["", "", "  "]))


def _odd_value(rng: random.Random, child: int) -> list[str]:
    """Values only ruamel understands (the line reader must give up on them)."""
    pad = " " * child
    return rng.choice(
        [
            [": [1, 2]"],
            [":", pad + "  - a", pad + "  - b"],
            [":", pad + "  nested: 1"],
            [": {a: 1}"],
            [": &anchor 5"],
            [": !!str 5"],
            [": a: b"],
            [": 'multi", pad + "  line'"],
            [': "esc\\tape"'],
            [": tab\there"],
        ]
    )


def random_file(rng: random.Random, *, odd: float = 0.03) -> str:
    """One file; `odd` is the chance of each construct the line reader leaves to ruamel."""
    indent = rng.choice([2, 2, 2, 4, 1])
    child = 2 * indent if rng.random() > odd else indent + rng.choice([1, 3])
    out: list[str] = []
    _junk(rng, out, 0)
    if rng.random() < odd:
        out.append(rng.choice(["limits:", "multi_kv_config:", "other: 1"]))
        if out[-1] != "other: 1":
            out.append(" " * indent + "x: 1")
    if rng.random() < 0.03:
        out.append("overrides:")
        return "\n".join(out) + "\n"
    if rng.random() < 0.03:
        out.append("overrides: {}")
        return "\n".join(out) + "\n"
    out.append("overrides:" + rng.choice(["", "", " # the tenants", "  "]))
    _junk(rng, out, indent)
    tenants = rng.sample(TENANTS, rng.randint(0, min(8, len(TENANTS))))
    if rng.random() < odd:
        tenants.append(rng.choice(tenants or ["dup"]))
    for tenant in tenants:
        line = " " * indent + _key(rng, tenant) + ":"
        if rng.random() < 0.2:
            line += rng.choice(["  # tenant note", " #t"])
        if rng.random() < 0.05:
            out.append(line)  # a null entry
            _junk(rng, out, indent)
            continue
        if rng.random() < odd:
            out.append(line + " {}")
            continue
        out.append(line)
        _junk(rng, out, child)
        limits = rng.sample(LIMITS, rng.randint(1, 4))
        if rng.random() < odd:
            limits.append(limits[0])
        if rng.random() < odd:
            limits.append("true")  # a key YAML reads as a boolean
        for limit in limits:
            pad = " " * child
            if rng.random() < odd:
                lines = _odd_value(rng, child)
                out.append(pad + limit + lines[0])
                out.extend(lines[1:])
                continue
            value = rng.choice(VALUES)
            text = pad + limit + ":" + ((" " * rng.choice([1, 1, 1, 2])) + value if value else "")
            if rng.random() < 0.2:
                text += rng.choice([" # why", "   # because", " #"])
            if rng.random() < 0.05:
                text += " "
            out.append(text)
            _junk(rng, out, child)
    if rng.random() < odd:
        out.append("after: 2")
    _junk(rng, out, indent)
    text = "\n".join(out)
    return text + "\n" if rng.random() < 0.9 else text


def canonical_file(rng: random.Random, tenants: int) -> str:
    """A file as the optimizer writes it (2-space indent, plain values, a few comments)."""
    out = ["# managed by the optimizer", "overrides:"]
    for index in range(tenants):
        if rng.random() < 0.05:
            out.append("  # team " + str(index))
        out.append(f"  tenant-{index:05d}:")
        for limit in rng.sample(LIMITS[:6], rng.randint(1, 3)):
            value = "30d" if limit == "compactor_blocks_retention_period" else rng.randint(1, 10**6)
            out.append(f"    {limit}: {value}")
        if rng.random() < 0.05:
            out.append("")
    return "\n".join(out) + "\n"
