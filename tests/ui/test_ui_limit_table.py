"""The limit table's edits applied to a config file (controller/ui_limit_table.py): comments,
indentation and untouched values stay as written, equal values are not edits, an empty cell
removes the key and the mappings it leaves empty, and each bad cell says what to write."""

from __future__ import annotations

import tempfile
from pathlib import Path

from mimir_limit_optimizer.catalogue import load_catalogue
from mimir_limit_optimizer.config.loader import load_config
from mimir_limit_optimizer.config.models import Config
from mimir_limit_optimizer.controller import ui_limit_table as table

FILE = """\
# the cluster's limits
mode: dry-run   # for now
dynamicLimits:
    limitOverrides:
        ingestion_rate:
            defaultValue: 25_000  # what Mimir's limits block says
            bufferFactor: 30
        compactor_blocks_retention_period:
            maxValue: 30d
limits:
    tenantTiers:
        gold:
            bufferPercentage: 30
            limits:
                ingestion_rate: 100000
"""


def apply(cells: dict[str, str]) -> table.Edited:
    return table.apply_edits(FILE, cells, load_catalogue())


def test_an_edit_keeps_comments_indentation_and_the_other_values() -> None:
    result = apply({"o:ingestion_rate:defaultValue": "30000", "t:gold:ingestion_rate": "100000"})
    assert result.errors == {}
    assert result.changes == [
        "dynamicLimits.limitOverrides.ingestion_rate.defaultValue: 25000 -> 30000"
    ]
    # ruamel keeps the comment in its column
    expected = FILE.replace("defaultValue: 25_000  #", "defaultValue: 30000   #")
    assert result.text == expected


def test_equal_values_are_not_edits() -> None:
    result = apply(
        {
            "o:ingestion_rate:defaultValue": "25000",  # 25_000 in the file
            "o:ingestion_rate:bufferFactor": "30%",
            "o:compactor_blocks_retention_period:maxValue": "720h",  # 30d
            "tb:gold": "30",
            "en:ingestion_rate": "",
        }
    )
    assert result.changes == [] and result.text == FILE


def test_empty_cells_remove_keys_and_the_mappings_left_empty() -> None:
    result = apply(
        {
            "o:compactor_blocks_retention_period:maxValue": "",
            "t:gold:ingestion_rate": "",
            "o:max_global_series_per_user:maxValue": "2000000",
            "en:request_rate": "false",
        }
    )
    assert result.errors == {}
    text = result.text
    assert "compactor_blocks_retention_period" not in text  # its only key went
    assert "gold:\n            bufferPercentage: 30\n" in text and "100000" not in text
    assert "        max_global_series_per_user:\n            maxValue: 2000000\n" in text
    assert "        request_rate:\n            enabled: false\n" in text
    loaded = load_config_text(text)
    overrides = loaded.dynamic_limits.limit_overrides
    assert overrides["max_global_series_per_user"].max_value == 2_000_000
    assert overrides["request_rate"].enabled is False
    assert loaded.limits.tenant_tiers["gold"].limits == {}


def test_each_bad_cell_says_what_to_write() -> None:
    result = apply(
        {
            "o:ingestion_rate:defaultValue": "-1",
            "o:max_global_series_per_user:maxValue": "1.5",
            "o:ingestion_burst_size:minValue": "10MB",
            "o:compactor_blocks_retention_period:minValue": "5x",
            "o:ingestion_rate:bufferFactor": "1001",
            "t:silver:ingestion_rate": "5",
            "o:no_such_limit:maxValue": "5",
            "en:ingestion_rate": "maybe",
        }
    )
    errors = result.errors
    assert errors["o:ingestion_rate:defaultValue"].startswith("must be 0 or more")
    assert errors["o:max_global_series_per_user:maxValue"] == "must be a whole number of series"
    assert "'10MB' is not a number of samples" in errors["o:ingestion_burst_size:minValue"]
    assert "'5x' is not a duration" in errors["o:compactor_blocks_retention_period:minValue"]
    assert "between 0 and 1000 percent" in errors["o:ingestion_rate:bufferFactor"]
    assert "no tier 'silver'" in errors["t:silver:ingestion_rate"]
    assert "not a limit of the catalogue" in errors["o:no_such_limit:maxValue"]
    assert "true, false or empty" in errors["en:ingestion_rate"]
    assert result.text == FILE and result.changes == []


def test_the_table_shows_what_the_file_sets() -> None:
    config = load_config_text(FILE)
    view = table.table(FILE, config, load_catalogue(), path="config.yaml", writable=True)
    rows = {r.limit: r for r in view.rows}
    cells = {c.name: c.value for c in rows["ingestion_rate"].cells}
    assert cells["o:ingestion_rate:defaultValue"] == "25000"
    assert cells["o:ingestion_rate:bufferFactor"] == "30"
    assert cells["t:gold:ingestion_rate"] == "100000"
    retention = {c.name: c.value for c in rows["compactor_blocks_retention_period"].cells}
    assert retention["o:compactor_blocks_retention_period:maxValue"] == "30d"
    assert view.tiers == ("gold",) and view.tier_buffers[0].value == "30"
    assert view.base == table.fingerprint(FILE)


def load_config_text(text: str) -> Config:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "config.yaml"
        path.write_text(text)
        return load_config(path, env={}, cli={}, catalogue=load_catalogue()).config
