"""The protection settings: the seed's `circuitBreaker` and `emergency` sections load typed
(with the seed's defaults and its request-level breaker keys accepted with a warning); a
top-level `blastProtection` is read as `circuitBreaker.blastProtection` with a warning, and
both set is an error naming both lines; mistakes are reported with their line and a fix; the
API token is a secret; the fast-loop interval defaults to 15 s."""

from __future__ import annotations

from pathlib import Path

import pytest

from mimir_limit_optimizer.catalogue import load_catalogue
from mimir_limit_optimizer.config import ConfigError, LoadedConfig, load_config, render_config

CATALOGUE = load_catalogue()
SEED_SECTIONS = """\
circuitBreaker:
  enabled: true
  failureThreshold: 50.0
  requestVolumeThreshold: 20
  rateLimit:
    enabled: true
    requestsPerSecond: 100
    burstCapacity: 200
  blastProtection:
    ingestionSpikeThreshold: 1000000  # 1M samples/sec
    querySpikeThreshold: 10000        # 10K queries/sec
    autoEmergencyShutdown: true

emergency:
  enabled: true
  panicMode:
    enabled: true
    cpuThreshold: 90.0
    memoryThreshold: 90.0
    actions: ["reduce_limits", "throttle_ingestion", "alert"]
"""


def load(tmp_path: Path, text: str) -> LoadedConfig:
    path = tmp_path / "mlo.yaml"
    path.write_text(text, encoding="utf-8")
    return load_config(path, env={}, cli={}, catalogue=CATALOGUE)


def error(tmp_path: Path, text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text)
    return info.value


def test_defaults_follow_the_seed() -> None:
    config = load_config(None, env={}, cli={}, catalogue=CATALOGUE).config
    breaker, emergency = config.circuit_breaker, config.emergency
    assert breaker.enabled and breaker.runtime_enabled and breaker.mode == "auto"
    assert breaker.fast_loop.interval == 15.0
    multipliers = breaker.auto_config.limit_multipliers
    assert (multipliers.ingestion_rate_multiplier, multipliers.query_rate_multiplier) == (1.5, 2.0)
    assert (multipliers.series_multiplier, multipliers.burst_multiplier) == (1.2, 1.2)
    adaptation = breaker.auto_config.realtime_adaptation
    assert (adaptation.interval, adaptation.learning_rate, adaptation.percentile) == (300, 0.1, 95)
    assert breaker.blast_protection.ingestion_spike_threshold == 1_000_000
    assert breaker.blast_protection.series_spike_threshold == 100_000
    levels = emergency.thresholds
    assert (levels.warning, levels.emergency, levels.panic) == (75, 90, 95)
    assert (emergency.sustained_for.cpu, emergency.sustained_for.memory) == (120, 60)
    assert (emergency.recovery.cpu_below, emergency.recovery.memory_below) == (70, 75)
    assert (emergency.recovery.step_percent, emergency.recovery.step_interval) == (10, 300)
    assert "blanket_cut" not in emergency.panic_mode.actions  # never by default


def test_the_seed_sections_load_typed_with_one_warning_per_unused_key(tmp_path: Path) -> None:
    loaded = load(tmp_path, SEED_SECTIONS)
    breaker = loaded.config.circuit_breaker
    assert breaker.blast_protection.query_spike_threshold == 10_000
    assert loaded.config.emergency.panic_mode.actions == [
        "reduce_limits",
        "throttle_ingestion",
        "alert",
    ]
    assert [w.split(": ")[1] for w in loaded.warnings] == [
        "circuitBreaker.failureThreshold",
        "circuitBreaker.requestVolumeThreshold",
        "circuitBreaker.rateLimit",
        "circuitBreaker.blastProtection.autoEmergencyShutdown",
    ]
    assert all(w.startswith("mlo.yaml:") or "mlo.yaml" in w for w in loaded.warnings)


def test_a_top_level_blast_protection_is_moved_with_a_warning(tmp_path: Path) -> None:
    loaded = load(tmp_path, "blastProtection:\n  querySpikeThreshold: 500\n")
    assert loaded.config.circuit_breaker.blast_protection.query_spike_threshold == 500
    assert any(
        "blastProtection" in w and "move it under circuitBreaker" in w for w in loaded.warnings
    )


def test_blast_protection_set_twice_names_both_lines(tmp_path: Path) -> None:
    text = (
        "circuitBreaker:\n  blastProtection:\n    querySpikeThreshold: 1\n"
        "blastProtection:\n  querySpikeThreshold: 2\n"
    )
    err = error(tmp_path, text)
    assert err.line == 4 and err.key == "blastProtection"
    assert "line 2" in err.problem and err.related_lines == (2,)


@pytest.mark.parametrize(
    ("text", "line", "key", "words"),
    [
        (
            "emergency:\n  panicMode:\n    actions: [alert, disable_queries]\n",
            3,
            "emergency.panicMode.actions[1]",
            "not one of the allowed values",
        ),
        (
            "emergency:\n  thresholds:\n    warning: 95\n    panic: 90\n",
            2,
            "emergency.thresholds",
            "levels out of order",
        ),
        (
            "circuitBreaker:\n  floors:\n    max_series: 10\n",
            3,
            "circuitBreaker.floors.max_series",
            "not one of the allowed values",
        ),
        (
            "circuitBreaker:\n  mode: smart\n",
            2,
            "circuitBreaker.mode",
            "not one of the allowed values",
        ),
        (
            "circuitBreaker:\n  fastLoop:\n    interval: 10m\n",
            3,
            "circuitBreaker.fastLoop.interval",
            "out of range",
        ),
        (
            "circuitBreaker:\n  apiToken: a\n  apiTokenFile: /t\n",
            1,
            "circuitBreaker",
            "either apiToken or apiTokenFile",
        ),
    ],
    ids=["unknown-action", "levels-order", "floor-of-a-non-limit", "mode", "interval", "token"],
)
def test_mistakes_are_reported_where_they_are(
    tmp_path: Path, text: str, line: int, key: str, words: str
) -> None:
    err = error(tmp_path, text)
    assert (err.line, err.key) == (line, key)
    assert words in f"{err.problem} {err.fix}"


def test_the_api_token_is_a_secret(tmp_path: Path) -> None:
    config = load(tmp_path, "circuitBreaker:\n  apiToken: tok-9876543\n").config
    assert config.circuit_breaker.api_token is not None
    assert config.circuit_breaker.api_token.get_secret_value() == "tok-9876543"
    assert "tok-9876543" not in render_config(config) and "tok-9876543" not in repr(config)
