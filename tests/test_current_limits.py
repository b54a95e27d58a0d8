"""The limits in force, resolved as Mimir resolves them: runtime files merged left to right
(a later file wins per tenant per limit, null keeps the default), then the cluster's own
`limits:` defaults (Mimir /config, its config file, cortex_limits_defaults, the declared
limitOverrides.defaultValue), and only then Mimir's flag default, which recommendations call
a guess. Every current value carries its origin."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import numpy as np
import pytest

from mimir_limit_optimizer.catalogue import load_catalogue
from mimir_limit_optimizer.config.loader import load_config
from mimir_limit_optimizer.engine.current import (
    ClusterDefaults,
    Origin,
    merged_overrides,
    origin_kind,
    resolve_current,
)
from mimir_limit_optimizer.engine.overrides import parse_overrides, validate_overrides
from mimir_limit_optimizer.engine.recommend import recommend
from mimir_limit_optimizer.engine.usage import Observation
from mimir_limit_optimizer.sources.current_limits import (
    CurrentLimitsError,
    cluster_defaults,
    defaults_from_config_text,
    read_base_documents,
    read_runtime_file,
)

CATALOGUE = load_catalogue()
RATE = CATALOGUE.limits["ingestion_rate"]
SERIES = CATALOGUE.limits["max_global_series_per_user"]
REQUESTS = CATALOGUE.limits["request_rate"]
RETENTION = CATALOGUE.limits["compactor_blocks_retention_period"]

OPERATOR = """\
overrides:
  team-a:
    ingestion_rate: 50000
    max_global_series_per_user: 2000000
  team-b:
    ingestion_rate: 70000
  team-c:
    ingestion_rate: 30000
"""
OPTIMIZER = """\
overrides:
  team-a:
    ingestion_rate: 60000
  team-c:
    ingestion_rate:
"""


def _docs() -> list:
    return [
        parse_overrides(OPERATOR, source_name="runtime.yaml"),
        parse_overrides(OPTIMIZER, source_name="optimizer.yaml"),
    ]


def _obs(tenants: tuple[str, ...], *, current=None, origin=None) -> Observation:
    t = 24
    return Observation(
        tenants=tenants,
        timestamps=np.arange(t, dtype=np.float64) * 300.0,
        step=300.0,
        usage={},
        current=current or {},
        current_origin=origin or {},
    )


def test_null_in_a_runtime_file_keeps_the_default_and_is_valid() -> None:
    text = "overrides:\n  a:\n    ingestion_rate:\n    max_global_series_per_user: ~\n"
    doc = parse_overrides(text)
    assert doc.number("a", RATE) is None
    assert doc.sets("a", "ingestion_rate")
    assert validate_overrides(text, CATALOGUE) == []


def test_later_file_wins_per_tenant_per_limit_and_earlier_limits_stay() -> None:
    tenants = ("team-a", "team-b", "team-c", "team-d")
    values, origins = merged_overrides(_docs(), tenants, [RATE, SERIES])
    # team-a: the optimizer's file overrides the rate; its series limit stays the operator's.
    np.testing.assert_array_equal(values["ingestion_rate"], [60000, 70000, np.nan, np.nan])
    np.testing.assert_array_equal(
        values["max_global_series_per_user"], [2_000_000, np.nan, np.nan, np.nan]
    )
    assert origins["ingestion_rate"][:2] == [
        "tenant override (optimizer.yaml)",
        "tenant override (runtime.yaml)",
    ]
    # team-c: a later null hides the earlier 30000 (the merged key is null: the default).
    assert origins["ingestion_rate"][2] == ""


def test_a_wrong_order_gives_the_other_answer() -> None:
    values, _ = merged_overrides(list(reversed(_docs())), ("team-a", "team-c"), [RATE])
    np.testing.assert_array_equal(values["ingestion_rate"], [50000, 30000])


def test_resolution_order_and_origins() -> None:
    tenants = ("team-a", "exported", "plain")
    obs = _obs(
        tenants,
        current={
            "ingestion_rate": np.array([np.nan, 99000.0, 12000.0]),
            "request_rate": np.array([np.nan, np.nan, np.nan]),
        },
        origin={
            "ingestion_rate": [
                "",
                "tenant override (cortex_limits_overrides)",
                "cluster default (cortex_limits_defaults)",
            ],
        },
    )
    resolved = resolve_current(
        obs,
        [RATE, REQUESTS, SERIES, RETENTION],
        documents=_docs(),
        cluster_defaults=[ClusterDefaults({"request_rate": 100.0}, "Mimir /config")],
        declared_defaults={"max_global_series_per_user": 300000.0},
    )
    rate = resolved.current["ingestion_rate"]
    np.testing.assert_array_equal(rate, [60000, 99000, 12000])
    assert resolved.current_origin["ingestion_rate"] == [
        "tenant override (optimizer.yaml)",
        "tenant override (cortex_limits_overrides)",
        "cluster default (cortex_limits_defaults)",
    ]
    # request_rate 100 from /config: not "unlimited" (the flag default 0 would say so).
    np.testing.assert_array_equal(resolved.current["request_rate"], [100, 100, 100])
    assert {origin_kind(o) for o in resolved.current_origin["request_rate"]} == {Origin.CLUSTER}
    series = resolved.current["max_global_series_per_user"]
    np.testing.assert_array_equal(series, [2_000_000, 300000, 300000])
    assert resolved.current_origin["max_global_series_per_user"][1] == (
        "cluster default (limitOverrides.defaultValue)"
    )
    # Nothing known: NaN with no origin (the recommendation pass says it guessed).
    assert np.isnan(resolved.current["compactor_blocks_retention_period"]).all()


def test_a_cluster_default_from_config_beats_the_exporter_default() -> None:
    obs = _obs(
        ("t",),
        current={"ingestion_rate": np.array([10000.0])},
        origin={"ingestion_rate": ["cluster default (cortex_limits_defaults)"]},
    )
    resolved = resolve_current(
        obs,
        [RATE],
        cluster_defaults=[ClusterDefaults({"ingestion_rate": 25000.0}, "/config")],
    )
    assert float(resolved.current["ingestion_rate"][0]) == 25000.0
    assert resolved.current_origin["ingestion_rate"] == ["cluster default (/config)"]


def _usage_obs(tenants: tuple[str, ...], level: float) -> Observation:
    t = 7 * 288
    usage = np.full((len(tenants), t), level)
    return Observation(
        tenants=tenants,
        timestamps=np.arange(t, dtype=np.float64) * 300.0,
        step=300.0,
        usage={"request_rate": usage},
    )


def test_recommendations_say_when_the_cluster_default_is_unknown() -> None:
    config = load_config(None, env={}, cli={}, catalogue=CATALOGUE).config
    obs = _usage_obs(("t",), 20.0)
    now = float(obs.timestamps[-1])
    guessed = recommend(obs, config, CATALOGUE, now=now, limits=["request_rate"])
    result = guessed.results["request_rate"]
    assert result.current_origin(0) == "flag default (cluster default unknown)"
    assert any("cluster default is unknown" in r for r in result.reasons(0))

    known = resolve_current(
        obs,
        [REQUESTS],
        cluster_defaults=[ClusterDefaults({"request_rate": 100.0}, "/config")],
    )
    told = recommend(known, config, CATALOGUE, now=now, limits=["request_rate"])
    result = told.results["request_rate"]
    assert float(result.current[0]) == 100.0
    assert result.current_origin(0) == "cluster default (/config)"
    assert not any("unknown" in r for r in result.reasons(0))


MIMIR_CONFIG = """\
target: all
limits:
  ingestion_rate: 25000
  request_rate: 100
  max_global_series_per_user: 300000
  compactor_blocks_retention_period: 720h0m0s
  native_histograms_ingestion_enabled: true
runtime_config:
  file: /var/mimir/runtime.yaml
"""


def test_defaults_from_mimir_config_text() -> None:
    defaults = defaults_from_config_text(MIMIR_CONFIG, CATALOGUE, where="Mimir /config")
    assert defaults.values["ingestion_rate"] == 25000.0
    assert defaults.values["request_rate"] == 100.0
    assert defaults.values["compactor_blocks_retention_period"] == 30 * 86400.0
    assert defaults.values["native_histograms_ingestion_enabled"] == 1.0
    with pytest.raises(ValueError, match="no `limits:` block"):
        defaults_from_config_text("target: all\n", CATALOGUE, where="x")


def test_cluster_defaults_are_read_from_the_config_endpoint_and_file(tmp_path: Path) -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200, text=MIMIR_CONFIG)

    file = tmp_path / "mimir.yaml"
    file.write_text("limits:\n  ingestion_rate: 1\n", encoding="utf-8")
    config = load_config(
        None,
        env={},
        cli={"mimir.configUrl": "http://mimir:8080/", "mimir.configFile": str(file)},
        catalogue=CATALOGUE,
    ).config
    found = cluster_defaults(
        config, CATALOGUE, logger=logging.getLogger("t"), transport=httpx.MockTransport(handler)
    )
    assert seen == ["http://mimir:8080/config"]
    assert [d.where for d in found] == ["Mimir /config", f"Mimir config {file}"]
    assert found[0].values["ingestion_rate"] == 25000.0


def test_an_unreachable_config_endpoint_is_logged_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, text="<html>not found</html>")

    config = load_config(
        None, env={}, cli={"mimir.configUrl": "http://mimir:8080"}, catalogue=CATALOGUE
    ).config
    with caplog.at_level(logging.WARNING):
        found = cluster_defaults(
            config, CATALOGUE, logger=logging.getLogger("t"), transport=httpx.MockTransport(handler)
        )
    assert found == []
    assert "HTTP 404" in caplog.text


def test_base_files_must_exist_and_be_utf8(tmp_path: Path) -> None:
    with pytest.raises(CurrentLimitsError, match="does not exist"):
        read_base_documents([str(tmp_path / "missing.yaml")])
    latin = tmp_path / "latin1.yaml"
    latin.write_bytes("overrides:\n  caf\xe9:\n    ingestion_rate: 1\n".encode("latin-1"))
    with pytest.raises(CurrentLimitsError, match="not UTF-8"):
        read_runtime_file(str(latin))


# --- `mlo plan` / `mlo recommend` given Mimir's list of runtime files ----------------------


def _cli_json(args: list[str], cwd: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    import json

    from typer.testing import CliRunner

    from mimir_limit_optimizer.cli.app import app

    monkeypatch.chdir(cwd)
    monkeypatch.delenv("MLO_CONFIG", raising=False)
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.stdout))


def test_plan_given_both_runtime_files_reads_the_operators_values_as_current(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    operator = tmp_path / "runtime.yaml"
    operator.write_text(
        "overrides:\n  tenant-001:\n    ingestion_rate: 123456\n"
        "  labels-001:\n    ingestion_rate: 77000\n"
    )
    optimizer = tmp_path / "optimizer.yaml"
    optimizer.write_text("overrides:\n  labels-001:\n    ingestion_rate: 15000\n")
    both = ["--overrides-file", str(operator), "--overrides-file", str(optimizer)]
    common = ["--limits", "ingestion_rate", "--tenants", "tenant-001,labels-001"]

    document = _cli_json(["recommend", "-f", "json", *both, *common], tmp_path, monkeypatch)
    rows = {r["tenant"]: r for r in document["recommendations"]}
    # The operator's file decides where the optimizer's says nothing; the optimizer's wins
    # where both set the limit (Mimir merges the list left to right).
    assert rows["tenant-001"]["current"] == 123456
    assert rows["tenant-001"]["current_origin"] == f"tenant override ({operator})"
    assert rows["labels-001"]["current"] == 15000
    assert rows["labels-001"]["current_origin"] == f"tenant override ({optimizer})"

    plan = _cli_json(["plan", "-f", "json", *both, *common], tmp_path, monkeypatch)
    # Every change starts from the merged value (whether a tenant is changed at all depends
    # on the synthetic cluster's time of day); tenant-001's 123456 is far above its usage.
    olds = {c["tenant"]: c["current"] for c in plan["changes"]}
    assert olds.get("tenant-001") == 123456
    assert olds.items() <= {"tenant-001": 123456, "labels-001": 15000}.items()

    # The same list as Mimir's comma-separated flag value.
    joined = ["--overrides-file", f"{operator},{optimizer}"]
    again = _cli_json(["recommend", "-f", "json", *joined, *common], tmp_path, monkeypatch)
    assert {r["tenant"]: r["current"] for r in again["recommendations"]} == {
        "tenant-001": 123456,
        "labels-001": 15000,
    }
    # Only the optimizer's file would be written; the operator's is read only.
    assert "123456" in operator.read_text()


def test_plan_file_renders_only_the_optimizers_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from mimir_limit_optimizer.cli.app import app

    operator = tmp_path / "runtime.yaml"
    operator.write_text("overrides:\n  tenant-001:\n    ingestion_rate: 123456\n")
    optimizer = tmp_path / "optimizer.yaml"
    optimizer.write_text("overrides: {}\n")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(
        app,
        ["plan", "-f", "file", "--limits", "ingestion_rate", "--tenants", "tenant-001",
         "--overrides-file", f"{operator},{optimizer}"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "tenant-001" in result.stdout  # the change lands in the optimizer's file...
    assert "123456" not in result.stdout  # ...which never copies the operator's values
