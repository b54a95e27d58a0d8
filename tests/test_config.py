"""The configuration loader reports every mistake with its file and line (or the environment
variable or command-line key), the key path and a fix; merges defaults < file < environment <
command line; maps the seed's aliases and legacy shorthands with deprecation warnings; accepts
the seed's unused sections with one warning each; only lets managed limits through; and never
prints a secret.

The seed README's full example (tests/data/seed_config.yaml, copied verbatim) defines
`dynamicLimits` twice: loading it fails naming both lines. Without the second block it still
fails, on `max_samples_per_query` (not a Mimir per-tenant limit) in `enabledLimits`, with the
catalogue's suggestion. Without the names that are not limits, and with a catalogue that knows
the other limits it names, it loads with one warning per unused seed key.
"""

from __future__ import annotations

import dataclasses
import json
import re
import typing
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, SecretStr

import mimir_limit_optimizer.config as config_package
from mimir_limit_optimizer.catalogue import Catalogue, KnownKey, load_catalogue
from mimir_limit_optimizer.config import (
    ConfigError,
    LoadedConfig,
    Mode,
    load_config,
    models,
    redacted_dump,
    render_config,
)
from mimir_limit_optimizer.config.models import Config
from mimir_limit_optimizer.config.recommendation import DEFAULT_ENABLED_LIMITS

SEED_CONFIG = Path(__file__).parent / "data" / "seed_config.yaml"
DOCS = Path(__file__).parent.parent / "docs" / "configuration.md"
CONFIG_PACKAGE = Path(config_package.__file__).parent
NOT_USED = "accepted, not used by this version"


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return load_catalogue()


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def load(
    catalogue: Catalogue,
    path: Path | None = None,
    env: dict[str, str] | None = None,
    cli: dict[str, Any] | None = None,
) -> LoadedConfig:
    return load_config(path, env=env or {}, cli=cli or {}, catalogue=catalogue)


def load_error(catalogue: Catalogue, path: Path | None = None, **kwargs: Any) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load(catalogue, path, **kwargs)
    return info.value


def line_of(text: str, pattern: str, occurrence: int = 1) -> int:
    """1-based line of the `occurrence`-th line matching `pattern`."""
    matches = [i for i, line in enumerate(text.splitlines(), 1) if re.search(pattern, line)]
    return matches[occurrence - 1]


def test_public_surface() -> None:
    assert sorted(config_package.__all__) == sorted(
        [
            "ENVIRONMENT_VARIABLES",
            "Config",
            "ConfigError",
            "LoadedConfig",
            "Mode",
            "load_config",
            "redacted_dump",
            "render_config",
        ]
    )


# --- errors in the file: (yaml, line, key path, text in problem, text in fix) ---------------
FILE_ERRORS = [
    pytest.param(
        "trendAnalysis:\n  percntile: 90\n",
        2,
        "trendAnalysis.percntile",
        "unknown key",
        "did you mean 'percentile'?",
        id="unknown-key-typo",
    ),
    pytest.param(
        "mode: prod\nbuffer_percentage: 10\n",
        2,
        "buffer_percentage",
        "unknown key",
        "keys are camelCase: write 'bufferPercentage'",
        id="snake-case-key",
    ),
    pytest.param(
        "limits:\n  minLimit: {ingestion_rate: 3}\n",
        2,
        "limits.minLimit",
        "unknown key",
        "did you mean 'minLimits'?",
        id="unknown-key-under-limits",
    ),
    pytest.param(
        "trendAnalysis:\n  percentile: 150\n",
        2,
        "trendAnalysis.percentile",
        "out of range (got 150)",
        "less than or equal to 100",
        id="out-of-range",
    ),
    pytest.param(
        "mode: dry-run\nbufferPercentage: lots\n",
        2,
        "bufferPercentage",
        "wrong type (got 'lots')",
        "valid number",
        id="wrong-type",
    ),
    pytest.param(
        "source: prometheus\n",
        1,
        "source",
        "wrong type",
        "this is a section",
        id="section-given-as-scalar",
    ),
    pytest.param(
        "mode: production\n",
        1,
        "mode",
        "not one of the allowed values",
        "'dry-run' or 'prod'",
        id="enum",
    ),
    pytest.param(
        "\n\nupdateInterval: 5 minutes\n",
        3,
        "updateInterval",
        "invalid value",
        "is not a duration",
        id="bad-duration",
    ),
    pytest.param(
        "source:\n  prometheus:\n    basicAuth:\n      password: x\n",
        3,
        "source.prometheus.basicAuth.username",
        "required key missing",
        "add 'username'",
        id="missing-key",
    ),
    pytest.param(
        "trendAnalysis:\n  timeOfDayBuffers:\n    '9-17': 1.5\n    '9-27': 1.2\n",
        4,
        "trendAnalysis.timeOfDayBuffers.9-27",
        "invalid value",
        "hours are 0-23",
        id="time-of-day-key",
    ),
    pytest.param(
        "limits:\n  minLimits:\n    ingestion_rat: 5\n",
        3,
        "limits.minLimits.ingestion_rat",
        "'ingestion_rat' is not a known limit",
        "did you mean 'ingestion_rate'",
        id="limit-name-typo",
    ),
    pytest.param(
        "dynamicLimits:\n  limitOverrides:\n    max_query_length:\n      defaultValue: 1\n",
        3,
        "dynamicLimits.limitOverrides.max_query_length",
        "'max_query_length' cannot be managed",
        "max_total_query_length",
        id="renamed-limit",
    ),
    pytest.param(
        "limits:\n  tenantTiers:\n    gold:\n      limits:\n        max_series_per_query: 9\n",
        5,
        "limits.tenantTiers.gold.limits.max_series_per_query",
        "cannot be managed",
        "max_fetched_series_per_query",
        id="not-a-limit-in-tier",
    ),
    pytest.param(
        "tenantTierMapping:\n  'gold-*': gold\n  '*': silver\nlimits:\n  tenantTiers:\n"
        "    silver: {}\n",
        2,
        "tenantTierMapping['gold-*']",
        "unknown tier 'gold'",
        "use one of 'silver'",
        id="unknown-tier",
    ),
    pytest.param(
        "tenantScoping:\n  useRegex: true\n  skipList:\n    - 'internal-.*'\n    - 'bad('\n",
        5,
        "tenantScoping.skipList[1]",
        "invalid regular expression 'bad('",
        "useRegex: false",
        id="bad-regex",
    ),
    pytest.param(
        "limits:\n  minLimits:\n    ingestion_rate: 5000\n  maxLimits:\n    ingestion_rate: 10\n",
        3,
        "limits.minLimits.ingestion_rate",
        "minimum 5000 is above the maximum 10 (line 5)",
        "lower the minimum",
        id="min-above-max",
    ),
    pytest.param(
        "source:\n  prometheus:\n    bearerTokenFile: /t\n    bearerTokenEnv: TOKEN\n",
        4,
        "source.prometheus.bearerTokenEnv",
        "more than one credential",
        "keep exactly one",
        id="two-credentials",
    ),
    pytest.param(
        "updateInterval: 1m\ncontroller:\n  reconcileInterval: 30s\n",
        3,
        "controller.reconcileInterval",
        "alias of updateInterval, which is also set (line 1)",
        "remove one of them",
        id="alias-and-key",
    ),
    pytest.param(
        "limits:\n  minLimits:\n    max_series: 1\n    max_global_series_per_user: 2\n",
        4,
        "limits.minLimits.max_global_series_per_user",
        "names the same limit as 'max_series' (line 3)",
        "keep only 'max_global_series_per_user'",
        id="limit-and-its-alias",
    ),
    pytest.param(
        "limits:\n  max_series: 3\ndynamicLimits:\n  limitOverrides:\n"
        "    max_global_series_per_user: {defaultValue: 2}\n",
        2,
        "limits.max_series",
        "legacy shorthand for dynamicLimits.limitOverrides.max_global_series_per_user"
        ".defaultValue, which is also set (line 5)",
        "remove the shorthand",
        id="shorthand-and-override",
    ),
    pytest.param(
        "limits:\n  ingestion_ratee: 3\n",
        2,
        "limits.ingestion_ratee",
        "neither a key of `limits` nor a known limit",
        "did you mean 'ingestion_rate'",
        id="shorthand-typo",
    ),
    pytest.param(
        "mode: prod\n  extra: [\n",
        2,
        "",
        "YAML syntax error",
        "check the indentation",
        id="syntax-error",
    ),
    pytest.param(
        # The seed README's mis-indented "Hybrid Mode" example, verbatim.
        "costControl:\n  enabled: true\n  autoLimitReduction: true\n  globalBudget:\n"
        "    enforceBudget: false     # Global default: monitoring only\n  tenantBudgets:\n"
        "    critical-service:\n"
        "      enforceBudget: false   # Monitoring only for critical services\n"
        "         development:\n"
        "       enforceBudget: true    # Enforcement for development tenants\n",
        9,
        "",
        "YAML syntax error",
        "check the indentation",
        id="seed-hybrid-mode-indentation",
    ),
    pytest.param(
        "mode: prod\n---\nmode: dry-run\n",
        2,
        "",
        "a second YAML document",
        "remove the '---' separator",
        id="second-document",
    ),
    pytest.param(
        "- mode: prod\n",
        1,
        "",
        "must be a mapping",
        "mode: dry-run",
        id="not-a-mapping",
    ),
    pytest.param(
        "mode: prod\n: 2\n",
        2,
        "",
        "empty key",
        "write a name",
        id="empty-key",
    ),
]


@pytest.mark.parametrize(("text", "line", "key", "problem", "fix"), FILE_ERRORS)
def test_file_errors_name_file_line_key_and_fix(
    catalogue: Catalogue,
    tmp_path: Path,
    *,
    text: str,
    line: int,
    key: str,
    problem: str,
    fix: str,
) -> None:
    path = write(tmp_path, text)
    error = load_error(catalogue, path)
    assert (error.file, error.line, error.key) == (str(path), line, key)
    assert problem in error.problem
    assert error.fix is not None and fix in error.fix
    prefix = f"{path}:{line}: {key}: " if key else f"{path}:{line}: "
    assert str(error).startswith(prefix + error.problem + "; " + error.fix)


def test_error_reads_file_line_key_problem_fix(catalogue: Catalogue, tmp_path: Path) -> None:
    path = write(tmp_path, "mode: dry-run\ntrendAnalysis:\n  percntile: 90\n")
    assert str(load_error(catalogue, path)) == (
        f"{path}:3: trendAnalysis.percntile: unknown key; did you mean 'percentile'?"
    )


def test_duplicate_key_names_both_lines(catalogue: Catalogue, tmp_path: Path) -> None:
    path = write(
        tmp_path, "trendAnalysis:\n  percentile: 90\n  strategy: histogram\n  percentile: 99\n"
    )
    error = load_error(catalogue, path)
    assert (error.line, error.key, error.related_lines) == (4, "trendAnalysis.percentile", (2,))
    assert "duplicate key (first defined on line 2, again on line 4)" in str(error)


def test_every_mistake_is_reported_first_in_file_order(
    catalogue: Catalogue, tmp_path: Path
) -> None:
    path = write(
        tmp_path,
        "trendAnalysis:\n  percentile: 150\nmode: production\nlimits:\n  minLimits:\n"
        "    max_samples_per_query: 1\n",
    )
    error = load_error(catalogue, path)
    assert [error.line, *(e.line for e in error.more)] == [2, 3, 6]
    assert len(str(error).splitlines()) == 3


def test_merge_keys_are_not_duplicates(catalogue: Catalogue, tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "limits:\n  minLimits: &floor\n    ingestion_rate: 5\n  tenantTiers:\n    gold:\n"
        "      limits:\n        <<: *floor\n        ingestion_rate: 7\n",
    )
    tiers = load(catalogue, path).config.limits.tenant_tiers
    assert tiers["gold"].limits == {"ingestion_rate": 7.0}


def test_unmanaged_mimir_limit_is_rejected(catalogue: Catalogue, tmp_path: Path) -> None:
    knowing = dataclasses.replace(
        catalogue,
        known={
            "some_mimir_key": KnownKey(
                "some_mimir_key", catalogue.limits["ingestion_rate"].value_kind
            )
        },
    )
    path = write(tmp_path, "dynamicLimits:\n  enabledLimits: [ingestion_rate, some_mimir_key]\n")
    error = load_error(knowing, path)
    assert (error.line, error.key) == (2, "dynamicLimits.enabledLimits[1]")
    assert "does not manage" in error.problem
    assert error.fix is not None and "mlo limits" in error.fix


def test_missing_file(catalogue: Catalogue, tmp_path: Path) -> None:
    error = load_error(catalogue, tmp_path / "nope.yaml")
    assert error.file == str(tmp_path / "nope.yaml")
    assert "file not found" in str(error) and "embedded default" in str(error)


# --- environment and command line ------------------------------------------------------------
OVERLAY_ERRORS = [
    pytest.param(
        {"BUFFER_PERCENTAGE": "abc"},
        {},
        "environment variable BUFFER_PERCENTAGE",
        "bufferPercentage",
        "valid number",
        id="env-number",
    ),
    pytest.param(
        {"UPDATE_INTERVAL": "10x"},
        {},
        "environment variable UPDATE_INTERVAL",
        "updateInterval",
        "is not a duration",
        id="env-duration",
    ),
    pytest.param(
        {"MODE": "production"},
        {},
        "environment variable MODE",
        "mode",
        "'dry-run' or 'prod'",
        id="env-mode",
    ),
    pytest.param({}, {"source.knd": "x"}, "command line", "source.knd", "'kind'", id="cli-key"),
    pytest.param(
        {},
        {"source.kind": "kafka"},
        "command line",
        "source.kind",
        "'synthetic' or 'prometheus'",
        id="cli-value",
    ),
    pytest.param(
        {},
        {"dynamicLimits.enabledLimits": ["ingestion_rate", "max_samples_per_query"]},
        "command line",
        "dynamicLimits.enabledLimits[1]",
        "max_fetched_chunks_per_query",
        id="cli-not-a-limit",
    ),
]


@pytest.mark.parametrize(("env", "cli", "source", "key", "fix"), OVERLAY_ERRORS)
def test_environment_and_cli_errors_name_the_variable_or_key(
    catalogue: Catalogue,
    *,
    env: dict[str, str],
    cli: dict[str, Any],
    source: str,
    key: str,
    fix: str,
) -> None:
    error = load_error(catalogue, None, env=env, cli=cli)
    assert (error.file, error.line, error.source, error.key) == (None, None, source, key)
    assert error.fix is not None and fix in error.fix
    assert str(error).startswith(f"{source}: {key}: ")


def test_cli_flag_names_are_used_when_given(catalogue: Catalogue) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(
            None,
            env={},
            cli={"source.kind": "kafka"},
            catalogue=catalogue,
            cli_flags={"source.kind": "--source"},
        )
    assert str(info.value).startswith("command line option --source: source.kind: ")


# --- precedence: defaults < file < environment < command line ---------------------------------
@pytest.mark.parametrize(
    ("in_file", "env", "cli", "expected"),
    [
        (False, {}, {}, None),
        (True, {}, {}, 30.0),
        (True, {"BUFFER_PERCENTAGE": "40"}, {}, 40.0),
        (True, {"BUFFER_PERCENTAGE": "40"}, {"bufferPercentage": 50.0}, 50.0),
        (True, {}, {"bufferPercentage": 50.0}, 50.0),
        (False, {"BUFFER_PERCENTAGE": "40"}, {}, 40.0),
        (True, {"BUFFER_PERCENTAGE": ""}, {"bufferPercentage": None}, 30.0),
    ],
)
def test_precedence(
    catalogue: Catalogue,
    tmp_path: Path,
    *,
    in_file: bool,
    env: dict[str, str],
    cli: dict[str, Any],
    expected: float | None,
) -> None:
    path = write(tmp_path, "bufferPercentage: 30\n") if in_file else None
    assert load(catalogue, path, env, cli).config.buffer_percentage == expected


def test_every_seed_environment_variable(catalogue: Catalogue) -> None:
    env = {
        "MODE": "prod",
        "MIMIR_NAMESPACE": "mimir-system",
        "MIMIR_CONFIGMAP_NAME": "mimir-runtime-overrides",
        "UPDATE_INTERVAL": "10m",
        "BUFFER_PERCENTAGE": "25",
    }
    config = load(catalogue, env=env).config
    assert config.mode is Mode.PROD
    assert (config.mimir.namespace, config.mimir.config_map_name) == (
        "mimir-system",
        "mimir-runtime-overrides",
    )
    assert (config.update_interval, config.buffer_percentage) == (600.0, 25.0)


def test_cli_overrides_one_leaf_and_keeps_its_siblings(
    catalogue: Catalogue, tmp_path: Path
) -> None:
    path = write(
        tmp_path,
        "source:\n  kind: prometheus\n  prometheus:\n    url: http://a:9090\n    tenant: meta\n",
    )
    cli = {"source.prometheus.url": "http://b:9009", "target.path": "/tmp/o.yaml"}
    config = load(catalogue, path, cli=cli).config
    assert (config.source.kind, config.source.prometheus.url) == ("prometheus", "http://b:9009")
    assert config.source.prometheus.tenant == "meta"
    assert config.target.path == "/tmp/o.yaml"


def test_cli_list_replaces_the_file_list(catalogue: Catalogue, tmp_path: Path) -> None:
    path = write(tmp_path, "dynamicLimits:\n  enabledLimits: [ingestion_rate]\n")
    cli = {"dynamicLimits.enabledLimits": ("max_label_names_per_series",)}
    config = load(catalogue, path, cli=cli).config
    assert config.dynamic_limits.enabled_limits == ["max_label_names_per_series"]


def test_environment_overrides_the_reconcile_interval_alias(
    catalogue: Catalogue, tmp_path: Path
) -> None:
    path = write(tmp_path, "controller:\n  reconcileInterval: 30s\n")
    loaded = load(catalogue, path)
    assert loaded.config.update_interval == 30.0
    assert loaded.config.controller is None  # nothing left in the section: no unused warning
    assert loaded.warnings == (
        f"{path}:2: controller.reconcileInterval: an alias of updateInterval; write updateInterval",
    )
    assert load(catalogue, path, env={"UPDATE_INTERVAL": "2m"}).config.update_interval == 120.0


def test_loader_does_not_read_the_process_environment(
    catalogue: Catalogue, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODE", "prod")
    assert load(catalogue).config.mode is Mode.DRY_RUN


# --- defaults -------------------------------------------------------------------------------
def test_no_file_is_the_embedded_default(catalogue: Catalogue) -> None:
    loaded = load(catalogue)
    assert (loaded.path, loaded.warnings) == (None, ())
    assert loaded.config.source.kind == "synthetic"
    assert loaded.config.mode is Mode.DRY_RUN
    # Only limits the catalogue manages are enabled by default.
    assert loaded.config.dynamic_limits.enabled_limits == [
        n for n in DEFAULT_ENABLED_LIMITS if n in catalogue.limits
    ]
    assert "ingestion_rate" in loaded.config.dynamic_limits.enabled_limits
    with pytest.raises(dataclasses.FrozenInstanceError):
        loaded.path = "x"  # type: ignore[misc]


@pytest.mark.parametrize("text", ["", "# nothing yet\n", "---\n", "dynamicLimits:\nlimits:\n"])
def test_empty_file_and_empty_sections_are_defaults(
    catalogue: Catalogue, tmp_path: Path, text: str
) -> None:
    path = write(tmp_path, text)
    loaded = load(catalogue, path)
    assert loaded.path == str(path)
    assert loaded.config == load(catalogue).config


@pytest.mark.parametrize(
    ("env", "cli", "given"),
    [
        ({}, {}, False),
        ({"BUFFER_PERCENTAGE": "20"}, {}, True),
        ({}, {"bufferPercentage": 20}, True),
    ],
)
def test_buffer_percentage_is_unset_unless_given(
    catalogue: Catalogue, *, env: dict[str, str], cli: dict[str, Any], given: bool
) -> None:
    # Unset: each limit uses its catalogue buffer; `config show` fed back keeps it unset.
    config = load(catalogue, env=env, cli=cli).config
    assert (config.buffer_percentage is not None) is given


# --- durations ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("written", "seconds"),
    [("48h", 172800.0), ("1h30m", 5400.0), ("7d", 604800.0), ("90", 90.0), ("2.5", 2.5)],
)
def test_durations_are_seconds(
    catalogue: Catalogue, tmp_path: Path, written: str, seconds: float
) -> None:
    path = write(tmp_path, f"trendAnalysis:\n  analysisWindow: {written}\n")
    assert load(catalogue, path).config.trend_analysis.analysis_window == seconds


def test_duration_limits_accept_duration_strings(catalogue: Catalogue, tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "limits:\n  minLimits:\n    compactor_blocks_retention_period: 30d\n"
        "dynamicLimits:\n  limitOverrides:\n    compactor_blocks_retention_period:\n"
        "      maxValue: 1y\n",
    )
    config = load(catalogue, path).config
    assert config.limits.min_limits["compactor_blocks_retention_period"] == 30 * 86400.0
    override = config.dynamic_limits.limit_overrides["compactor_blocks_retention_period"]
    assert override.max_value == 365 * 86400.0


# --- seed names: aliases, legacy shorthand, unused sections -----------------------------------
def test_legacy_limits_shorthand_maps_to_limit_overrides(
    catalogue: Catalogue, tmp_path: Path
) -> None:
    path = write(
        tmp_path,
        "limits:\n  ingestion_rate: 25000\n  max_series: 150000\n  minLimits:\n"
        "    ingestion_rate: 1000\ndynamicLimits:\n  limitOverrides:\n    ingestion_rate:\n"
        "      bufferFactor: 30\n",
    )
    loaded = load(catalogue, path)
    limits = loaded.config.limits
    assert not limits.model_extra
    assert limits.min_limits == {"ingestion_rate": 1000.0}
    overrides = loaded.config.dynamic_limits.limit_overrides
    assert overrides["ingestion_rate"].default_value == 25000.0
    assert overrides["ingestion_rate"].buffer_factor == 30.0  # merged, not replaced
    assert overrides["max_global_series_per_user"].default_value == 150000.0
    assert "max_series" not in overrides
    assert loaded.warnings == (
        f"{path}:2: limits.ingestion_rate: deprecated shorthand: mapped to "
        "dynamicLimits.limitOverrides.ingestion_rate.defaultValue; move it there",
        f"{path}:3: limits.max_series: deprecated shorthand ('max_series' is a deprecated "
        "name of 'max_global_series_per_user'): mapped to dynamicLimits.limitOverrides."
        "max_global_series_per_user.defaultValue; move it there",
    )


def test_errors_in_moved_values_point_at_the_written_key(
    catalogue: Catalogue, tmp_path: Path
) -> None:
    path = write(tmp_path, "mode: prod\nlimits:\n  max_series: many\n")
    error = load_error(catalogue, path)
    assert (error.line, error.key) == (3, "limits.max_series")


@pytest.mark.parametrize(
    "text",
    [
        "limits:\n  maxLimits:\n    max_series: 5\n",
        "dynamicLimits:\n  enabledLimits: [max_series]\n",
        "dynamicLimits:\n  limitOverrides:\n    max_series: {defaultValue: 5}\n",
        "limits:\n  tenantTiers:\n    gold:\n      limits:\n        max_series: 5\n",
    ],
)
def test_max_series_alias_is_mapped_with_a_deprecation_warning(
    catalogue: Catalogue, tmp_path: Path, text: str
) -> None:
    loaded = load(catalogue, write(tmp_path, text))
    dumped = json.dumps(redacted_dump(loaded.config))
    assert "max_global_series_per_user" in dumped and 'max_series"' not in dumped
    (warning,) = loaded.warnings
    assert "'max_series' is a deprecated name of 'max_global_series_per_user'" in warning


def test_repeated_enabled_limit_is_dropped_with_a_warning(
    catalogue: Catalogue, tmp_path: Path
) -> None:
    path = write(
        tmp_path, "dynamicLimits:\n  enabledLimits:\n    - ingestion_rate\n    - ingestion_rate\n"
    )
    loaded = load(catalogue, path)
    assert loaded.config.dynamic_limits.enabled_limits == ["ingestion_rate"]
    assert loaded.warnings == (
        f"{path}:4: dynamicLimits.enabledLimits[1]: 'ingestion_rate' is listed twice; "
        "the repeat is ignored",
    )


def test_unused_seed_keys_are_accepted_with_one_warning_each(
    catalogue: Catalogue, tmp_path: Path
) -> None:
    path = write(
        tmp_path,
        "mimir:\n  triggerRollout: false\nsynthetic:\n  enabled: true\n"
        "ui:\n  enabled: true\n  port: 8082\n"
        "eventSpike:\n  cooldownPeriod: 45m\ncontroller:\n  mode: prod\n",
    )
    loaded = load(catalogue, path)
    keyed = {w.split(": ")[1]: w for w in loaded.warnings}
    assert list(keyed) == [
        "mimir.triggerRollout",
        "synthetic.enabled",
        "ui.port",
        "eventSpike.cooldownPeriod",
        "controller",
    ]
    assert all(NOT_USED in w for w in loaded.warnings)
    # `ui` is the web UI's section now; its seed key `port` is server.uiPort's job.
    assert keyed["ui.port"] == f"{path}:7: ui.port: {NOT_USED} (server.uiPort is the UI's port)"
    # Accepted is not acted on: `controller.mode` is not `mode`.
    assert loaded.config.mode is Mode.DRY_RUN
    assert loaded.config.event_spike.cooldown_period == 2700.0


# --- the seed README's full example -----------------------------------------------------------
def seed_text() -> str:
    return SEED_CONFIG.read_text(encoding="utf-8")


def without_second_dynamic_limits(text: str) -> str:
    marker = "\n# Dynamic Limits Configuration (NEW)\ndynamicLimits:"
    second = text.index(marker, text.index(marker) + 1)
    return text[:second] + "\n"


def test_seed_example_fails_on_its_duplicate_dynamic_limits(catalogue: Catalogue) -> None:
    text = seed_text()
    first, second = line_of(text, r"^dynamicLimits:", 1), line_of(text, r"^dynamicLimits:", 2)
    error = load_error(catalogue, SEED_CONFIG)
    assert (error.file, error.line, error.key) == (str(SEED_CONFIG), second, "dynamicLimits")
    assert error.related_lines == (first,)
    assert f"first defined on line {first}, again on line {second}" in str(error)


def test_seed_example_without_duplicate_rejects_names_that_are_not_limits(
    catalogue: Catalogue, tmp_path: Path
) -> None:
    text = without_second_dynamic_limits(seed_text())
    path = write(tmp_path, text)
    error = load_error(catalogue, path)
    assert (error.line, error.key) == (
        line_of(text, r"^    - max_samples_per_query$"),
        "dynamicLimits.enabledLimits[3]",
    )
    assert error.problem == "'max_samples_per_query' cannot be managed"
    assert error.fix == catalogue.suggest("max_samples_per_query")
    reported = {(e.key, e.line) for e in (error, *error.more)}
    assert ("dynamicLimits.enabledLimits[5]", line_of(text, r"- max_series_per_query$")) in reported
    assert (
        "limits.minLimits.max_samples_per_query",
        line_of(text, r"max_samples_per_query: 1000000$"),
    ) in reported
    assert (
        "limits.maxLimits.max_samples_per_query",
        line_of(text, r"max_samples_per_query: 100000000$"),
    ) in reported


def test_seed_example_loads_once_its_mistakes_are_fixed(
    catalogue: Catalogue, tmp_path: Path
) -> None:
    # The seed names three real Mimir limits the shipped catalogue may not manage yet.
    extra = (
        "max_fetched_chunks_per_query",
        "max_fetched_series_per_query",
        "max_global_exemplars_per_user",
    )
    template = catalogue.limits["max_global_series_per_user"]
    wider = dataclasses.replace(
        catalogue,
        limits={**catalogue.limits, **{n: dataclasses.replace(template, name=n) for n in extra}},
        known={k: v for k, v in catalogue.known.items() if k not in extra},
    )
    text = without_second_dynamic_limits(seed_text())
    text = re.sub(r"\n *-? *max_s(amples|eries)_per_query(: \d+)?(?=\n)", "", text)
    path = write(tmp_path, text)
    loaded = load(wider, path)
    config = loaded.config

    unused = [w.split(": ")[1] for w in loaded.warnings if NOT_USED in w]
    assert unused == [
        "ui.port",  # server.uiPort is the port
        "circuitBreaker.failureThreshold",  # circuitBreaker and emergency are typed
        "circuitBreaker.requestVolumeThreshold",  # (config/protection.py); these seed keys
        "circuitBreaker.rateLimit",  # of a request-level breaker are accepted, not used
        "circuitBreaker.blastProtection.autoEmergencyShutdown",
        "performance",
        "dynamicLimits.autoDetect",
        "metricsDiscovery",
        "eventSpike.detectionWindow",
        "eventSpike.cooldownPeriod",
        "eventSpike.maxSpikeMultiplier",
        "auditLog",
    ]
    renamed = [w for w in loaded.warnings if "deprecated name" in w]
    assert len(renamed) == 4  # max_series in minLimits, maxLimits and two tiers
    assert len(loaded.warnings) == len(unused) + len(renamed)

    assert config.trend_analysis.analysis_window == 172800.0
    assert config.trend_analysis.time_of_day_buffers == {"9-17": 1.5, "0-8": 0.8}
    assert config.limits.min_limits == {
        "ingestion_rate": 1000.0,
        "max_global_series_per_user": 10000.0,
    }
    assert config.limits.tenant_tiers["enterprise"].limits["max_global_series_per_user"] == 5e6
    assert config.dynamic_limits.enabled_limits == [
        "ingestion_rate",
        "ingestion_burst_size",
        "max_global_series_per_user",
        *extra,
    ]
    assert config.alerting.slack is not None  # alerting is typed (config/alerting.py)
    webhook = config.alerting.slack.webhook_url
    assert isinstance(webhook, SecretStr)
    assert webhook.get_secret_value().startswith("https://hooks.slack.com/")
    assert "hooks.slack.com" not in render_config(config)


# --- secrets --------------------------------------------------------------------------------
SECRETS = ("tok-123", "pw-456", "hook-789", "pd-abc", "hdr-def", "urlpw-ghi", "qtok-jkl")
SECRET_CONFIG = """\
source:
  kind: prometheus
  prometheus:
    url: https://reader:urlpw-ghi@mimir.example/prometheus?token=qtok-jkl
    headers:
      Authorization: Bearer hdr-def
      X-Scope-OrgID: meta
    basicAuth:
      username: reader
      password: pw-456
alerting:
  slack:
    webhookURL: https://hooks.slack.com/services/hook-789
    channel: "#mimir-alerts"
  pagerduty:
    integrationKey: pd-abc
  webhooks:
    ops:
      url: https://alice:tok-123@hooks.example/x
"""


@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_no_secret_appears_in_rendered_config(
    catalogue: Catalogue, tmp_path: Path, fmt: str
) -> None:
    config = load(catalogue, write(tmp_path, SECRET_CONFIG)).config
    rendered = render_config(config, fmt)  # type: ignore[arg-type]
    assert not [s for s in SECRETS if s in rendered]
    assert "meta" in rendered and "#mimir-alerts" in rendered and "reader" in rendered


def test_redacted_dump_masks_secrets_and_keeps_the_rest(
    catalogue: Catalogue, tmp_path: Path
) -> None:
    config = load(catalogue, write(tmp_path, SECRET_CONFIG)).config
    dump = redacted_dump(config)
    prometheus = dump["source"]["prometheus"]
    assert prometheus["url"] == "https://reader:***@mimir.example/prometheus?token=***"
    assert prometheus["headers"] == {"Authorization": "***", "X-Scope-OrgID": "meta"}
    assert prometheus["basicAuth"]["password"] == "***"
    slack, pagerduty = dump["alerting"]["slack"], dump["alerting"]["pagerduty"]
    assert (slack["webhookURL"], slack["channel"]) == ("***", "#mimir-alerts")
    assert pagerduty["integrationKey"] == "***"
    # A webhook URL is a secret as a whole.
    assert dump["alerting"]["webhooks"]["ops"]["url"] == "***"
    assert dump["updateInterval"] == "5m"
    assert "performance" not in dump  # unused sections that are not set are left out
    assert dump["ui"]["auth"]["token"] is None  # the web UI section is typed now
    # The typed config keeps the values usable.
    assert config.source.prometheus.basic_auth is not None
    password = config.source.prometheus.basic_auth.password
    assert password is not None and password.get_secret_value() == "pw-456"


def test_bearer_token_is_secret_in_config_and_errors(catalogue: Catalogue, tmp_path: Path) -> None:
    path = write(tmp_path, "source:\n  prometheus:\n    bearerToken: tok-123\n")
    config = load(catalogue, path).config
    assert "tok-123" not in render_config(config) and "tok-123" not in repr(config)
    bad = write(tmp_path, "source:\n  prometheus:\n    bearerToken: 987654321\n")
    assert "987654321" not in str(load_error(catalogue, bad))


def test_rendered_config_loads_back_to_the_same_config(
    catalogue: Catalogue, tmp_path: Path
) -> None:
    path = write(
        tmp_path,
        "mode: prod\ntrendAnalysis:\n  analysisWindow: 48h\n  timeOfDayBuffers: {'9-17': 1.5}\n"
        "limits:\n  tenantTiers:\n    gold: {bufferPercentage: 40}\ntenantTierMapping:\n"
        "  'gold-*': gold\n",
    )
    config = load(catalogue, path).config
    rendered = render_config(config)
    assert "analysisWindow: 2d" in rendered
    again = load(catalogue, write(tmp_path, rendered))
    assert again.config == config
    assert all(NOT_USED in w for w in again.warnings)  # the unused keys it shows


# --- documentation and hygiene ----------------------------------------------------------------
def _leaf_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Dotted camelCase path of every non-section field (sections: model-typed fields)."""
    keys = []
    for name, info in model.model_fields.items():
        key = prefix + (info.alias or name)
        options = typing.get_args(info.annotation) or (info.annotation,)
        sections = [t for t in options if isinstance(t, type) and issubclass(t, BaseModel)]
        keys.extend(_leaf_keys(sections[0], key + ".") if sections else [key])
    return keys


def test_docs_describe_every_key_and_every_unused_key() -> None:
    docs = DOCS.read_text(encoding="utf-8")
    missing = [
        k for k in _leaf_keys(Config) if not re.search(rf"[`.]{k.rpartition('.')[2]}`", docs)
    ]
    assert not missing
    unused = [*models.UNUSED_SEED_SECTIONS, *(k for k, _ in models.UNUSED_SEED_KEYS)]
    section = docs[docs.index("### Accepted, not used by this version") :]
    assert not [k for k in unused if f"| `{k}` |" not in section]


def test_loader_never_reads_the_process_environment() -> None:
    for module in CONFIG_PACKAGE.glob("*.py"):
        assert "os.environ" not in module.read_text(encoding="utf-8"), module.name


def test_rendering_the_config_does_not_change_how_overrides_files_are_written() -> None:
    # `mlo config show` writes None as `null`; that must not leak into ruamel's round-trip
    # writer, which every later overrides file of the process goes through.
    from ruamel.yaml.comments import CommentedMap

    from mimir_limit_optimizer.config.loader import render_config
    from mimir_limit_optimizer.engine.overrides_yaml import dump, make_yaml

    data = CommentedMap({"overrides": CommentedMap({"tenant-a": None})})
    before = dump(make_yaml(), data)
    assert "null" in render_config(Config.model_validate({"source": {"kind": "synthetic"}}))
    assert dump(make_yaml(), data) == before == "overrides:\n  tenant-a:\n"
