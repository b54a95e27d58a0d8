"""`mlo plan` prints exactly what `mlo run --once --mode prod` then writes, for the file and the
ConfigMap target (the in-process fake Kubernetes API server), with pinned tenants, a per-cycle
tenant cap, a maximum change per cycle, the cooldown of the previous cycle's writes, an active
protection cap, and a freeze in play. Both commands run through the CLI, in process."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
from typer.testing import CliRunner

from mimir_limit_optimizer.catalogue import load_catalogue
from mimir_limit_optimizer.cli.service_cmds import app
from mimir_limit_optimizer.engine.overrides import parse_overrides
from mimir_limit_optimizer.engine.protection import Clamp, ProtectionState
from mimir_limit_optimizer.store import Store
from tests.kube_fake import FakeKubeApiServer

CATALOGUE = load_catalogue()
RUNNER = CliRunner()
STEP = 300.0  # the synthetic cluster's step: both commands must see the same cluster
PINNED = "tenant-002"
CAPPED = ("blast-001", "max_global_series_per_user")
CAP = 160_000.0


def _same_step() -> None:
    """Start well inside one synthetic step, so plan and run see the same data (bounded)."""
    left = STEP - time.time() % STEP
    if left < 40:
        time.sleep(left + 1)


def _config(tmp: Path, target: str, *, freeze: bool = False) -> Path:
    path = tmp / "mlo.yaml"
    path.write_text(
        f"dataDir: {tmp / 'data'}\n"
        "synthetic:\n  tenantCount: 12\n"
        "server:\n  enabled: false\n"
        f"{target}"
        "safety:\n  maxTenantsPerCycle: 3\n  maxChangePercent: 30\n"
        f"  pinnedTenants: [{PINNED}]\n  freeze: {str(freeze).lower()}\n"
        "changePolicy:\n  cooldown: 1h\n"
    )
    return path


def _invoke(*args: str) -> str:
    result = RUNNER.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


def _plan(config: Path) -> tuple[str, dict[str, Any]]:
    rendered = _invoke("plan", "-c", str(config), "-f", "file")
    document = json.loads(_invoke("plan", "-c", str(config), "-f", "json"))
    return rendered, document


def _protect(tmp: Path) -> None:
    """An active protection cap, as the fast loop would have left it in its checkpoint."""
    store = Store.open(f"sqlite:///{tmp / 'data' / 'mlo.db'}")
    state = ProtectionState()
    state.clamps[CAPPED] = Clamp(target=150_000.0, since=time.time(), breaker=CAP,
                                 reasons=["series blast"])  # fmt: skip
    state.last_tick = time.time()
    store.save_checkpoint("protection", json.dumps(state.to_json()).encode(), at=time.time())
    store.close()


def _newest_writes(tmp: Path, target: str) -> list[tuple[str, str, float]]:
    store = Store.open(f"sqlite:///{tmp / 'data' / 'mlo.db'}")
    try:
        (revision,) = [r for r in store.revisions(target, limit=1) if r.kind == "apply"]
        return sorted((str(r["tenant"]), str(r["limit"]), float(r["new"])) for r in revision.plan)
    finally:
        store.close()


def _writes(document: dict[str, Any]) -> list[tuple[str, str, float]]:
    return sorted(
        (c["tenant"], c["limit"], float(c["recommended"]))
        for c in document["changes"]
        if c["held"] is None
    )


def _cycle(config: Path, read: Any, tmp: Path, target_name: str) -> dict[str, Any]:
    """plan, then run: the run writes exactly what the plan showed. Returns the plan."""
    rendered, document = _plan(config)
    assert _writes(document), "nothing to write: the scenario tests nothing"
    for c in document["changes"]:
        if c["current"] and c["held"] is None:  # maxChangePercent: a step within 30%
            assert abs(c["recommended"] - c["current"]) <= 0.30 * c["current"] + 1e-9
        assert c["tenant"] != PINNED or c["held"]
    _invoke("run", "-c", str(config), "--once", "--mode", "prod")
    assert read() == rendered  # byte for byte what plan showed
    assert _newest_writes(tmp, target_name) == _writes(document)
    return document


def _scenario(tmp: Path, target_yaml: str, read: Any, target_name: str) -> None:
    (tmp / "data").mkdir()
    config = _config(tmp, target_yaml)
    _protect(tmp)
    _same_step()
    first = _cycle(config, read, tmp, target_name)
    second = _cycle(config, read, tmp, target_name)  # the first cycle's writes cool down
    changes = first["changes"] + second["changes"]
    held = {c["held"].split(":")[0] for c in changes if c["held"]}
    assert {"pinned", "cooldown"} <= held, held
    assert any("maxTenantsPerCycle" in c["held"] for c in changes if c["held"])
    assert any(any("safety.maxChangePercent" in r for r in c["reasons"]) for c in changes)
    capped = [c for c in changes if (c["tenant"], c["limit"]) == CAPPED]
    assert capped and all(c["recommended"] <= CAP for c in capped)
    assert any("held at 160000 by protection" in r for c in capped for r in c["reasons"])
    assert float(parse_overrides(read()).get(*CAPPED)) <= CAP

    # A freeze: plan holds everything back, and run writes nothing.
    frozen = _config(tmp, target_yaml, freeze=True)
    before = read()
    rendered, document = _plan(frozen)
    assert document["changes"] and all(
        c["held"] == "frozen: safety.freeze is on" for c in document["changes"]
    )
    assert rendered == before
    _invoke("run", "-c", str(frozen), "--once", "--mode", "prod")
    assert read() == before


def test_plan_shows_what_run_writes_to_a_file(tmp_path: Path) -> None:
    overrides = tmp_path / "overrides.yaml"
    overrides.write_text(
        "# hand-written\noverrides:\n  tenant-001:\n    max_queriers_per_tenant: 4\n"
    )
    _scenario(
        tmp_path,
        f"target:\n  path: {overrides}\n",
        overrides.read_text,
        f"file {overrides.resolve()}",
    )


def test_plan_shows_what_run_writes_to_a_configmap(tmp_path: Path) -> None:
    with FakeKubeApiServer() as api:
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(
            "apiVersion: v1\nkind: Config\ncurrent-context: fake\n"
            f"clusters:\n- name: fake\n  cluster:\n    server: {api.url}\n"
            "contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n"
            "users:\n- name: fake\n  user: {}\n"
        )
        body = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "optimizer", "namespace": "mimir"},
            "data": {"overrides.yaml": "overrides: {}\n", "other.yaml": "keep: me\n"},
        }
        created = httpx.post(f"{api.url}/api/v1/namespaces/mimir/configmaps", json=body)
        assert created.status_code == 201

        def read() -> str:
            found = api.get("configmaps", "mimir", "optimizer")
            assert found is not None
            return str(found["data"]["overrides.yaml"])

        target = (
            "target:\n  kind: configmap\n  configMap:\n"
            "    namespace: mimir\n    name: optimizer\n    key: overrides.yaml\n"
            f"    kubeconfig: {kubeconfig}\n"
        )
        _scenario(tmp_path, target, read, "configmap mimir/optimizer key overrides.yaml")
