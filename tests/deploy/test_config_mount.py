"""The chart's configuration ConfigMap is hot-reloaded as the kubelet updates it: the kubelet
writes a ConfigMap volume as `config.yaml -> ..data/config.yaml` with `..data` a symlink it
swaps atomically to a new timestamped directory. A `helm upgrade` that changes values (dry-run
to prod) reaches the running service's config provider through that swap, and a broken update
keeps the last good configuration."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from mimir_limit_optimizer.catalogue import load_catalogue
from mimir_limit_optimizer.config.loader import ConfigError
from mimir_limit_optimizer.config.models import Mode
from mimir_limit_optimizer.controller.config_provider import ConfigProvider
from tests.deploy.chart import by_kind, render


def _config_text(values: dict[str, Any]) -> str:
    (cm,) = [
        c for c in by_kind(render(values), "ConfigMap") if c["metadata"]["name"].endswith("-config")
    ]
    text: str = cm["data"]["config.yaml"]
    return text


class KubeletVolume:
    """A ConfigMap volume laid out and updated the way the kubelet's atomic writer does it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.generation = 0
        root.mkdir()

    def write(self, files: dict[str, str]) -> None:
        self.generation += 1
        version = self.root / f"..2026_12_06_00_00_{self.generation:02d}.000000001"
        version.mkdir()
        for name, text in files.items():
            (version / name).write_text(text, encoding="utf-8")
        tmp = self.root / "..data_tmp"
        tmp.symlink_to(version.name)
        os.replace(tmp, self.root / "..data")  # the atomic swap
        for name in files:
            link = self.root / name
            if not link.is_symlink():
                link.symlink_to(f"..data/{name}")


def test_a_values_change_reaches_the_running_service_through_the_kubelet_swap(
    tmp_path: Path,
) -> None:
    volume = KubeletVolume(tmp_path / "config")
    volume.write({"config.yaml": _config_text({})})
    failures: list[ConfigError] = []
    provider = ConfigProvider(
        volume.root / "config.yaml",
        env={},
        cli={},
        catalogue=load_catalogue(),
        on_failure=failures.append,
    )
    assert provider.config.mode is Mode.DRY_RUN
    assert provider.reload_if_changed() is False  # nothing changed yet

    volume.write(
        {"config.yaml": _config_text({"config": {"mode": "prod", "updateInterval": "5m"}})}
    )
    assert provider.reload_if_changed() is True
    assert provider.config.mode is Mode.PROD

    broken = yaml.safe_load(_config_text({"config": {"mode": "prod"}}))
    broken["updateInterval"] = "five minutes"
    volume.write({"config.yaml": yaml.safe_dump(broken)})
    assert provider.reload_if_changed() is False
    assert provider.config.mode is Mode.PROD  # the last good configuration stays
    assert len(failures) == 1 and "updateInterval" in str(failures[0])
