"""Builds the service's parts from config: store, target, verifier, source factory."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from pathlib import Path

from mimir_limit_optimizer.config.models import Config
from mimir_limit_optimizer.controller.oneshot import build_source
from mimir_limit_optimizer.sources.base import Source, SourceError
from mimir_limit_optimizer.sources.prometheus import PrometheusSource
from mimir_limit_optimizer.store import Store
from mimir_limit_optimizer.targets.base import Target, TargetError
from mimir_limit_optimizer.targets.file import FileTarget
from mimir_limit_optimizer.targets.verify import MimirVerifier


def overrides_path(config: Config) -> str | None:
    """The file target's path: configured, or the embedded default's local file."""
    if config.target.path:
        return config.target.path
    if config.source.kind == "synthetic":
        return str(Path(config.data_dir) / "overrides.yaml")
    return None


def store_url(config: Config) -> str:
    if config.store.url:
        return config.store.url
    return f"sqlite:///{Path(config.data_dir) / 'mlo.db'}"


def open_store(config: Config) -> Store:
    return Store.open(store_url(config))


class WiringError(ValueError):
    """The configuration does not name a usable target."""


def build_target(config: Config) -> Target:
    if config.target.kind == "configmap":
        from mimir_limit_optimizer.k8s.client import KubeApi
        from mimir_limit_optimizer.targets.configmap import ConfigMapTarget

        cm = config.target.config_map
        api = KubeApi.from_settings(cm.kubeconfig, cm.context)
        return ConfigMapTarget(
            api,
            namespace=cm.namespace,
            name=cm.name,
            key=cm.key,
            create_if_missing=cm.create_if_missing,
        )
    path = overrides_path(config)
    if path is None:
        raise WiringError(
            "no target: set target.path (or --overrides-file) to the runtime overrides file, "
            "or target.kind: configmap"
        )
    return FileTarget(Path(path).resolve(), lock_timeout=config.target.lock_timeout)


def check_parts(config: Config, env: Mapping[str, str]) -> None:
    """Build what a cycle builds from `config` (the source, the target) and drop it: start-up
    and every config reload run this, so a setting that cannot work (a URL no client can
    call, a token file that cannot be read, no target) is refused before it is used.
    Raises WiringError naming the problem."""
    try:
        if config.source.kind == "prometheus":
            PrometheusSource(
                config.source.prometheus,
                replication_factor=config.mimir.replication_factor,
                env=env,
            )
        build_target(config)
    except (SourceError, TargetError, ValueError) as exc:
        raise WiringError(str(exc)) from exc


def build_verifier(config: Config) -> MimirVerifier | None:
    return MimirVerifier(config.verify) if config.verify.mimir_url else None


def source_factory(env: Mapping[str, str] | None = None) -> Callable[[Config, float], Source]:
    environment = dict(env if env is not None else os.environ)

    kept: list[tuple[object, Source]] = []  # the last synthetic cluster and what built it
    last: list[tuple[object, PrometheusSource]] = []  # the last Prometheus source, its settings

    def make(config: Config, now: float) -> Source:
        if config.source.kind != "synthetic":
            source = build_source(config, now=now, env=environment)
            if isinstance(source, PrometheusSource):
                # A new source each cycle (token files re-read), starting at the requests in
                # flight the last one learned against the same server (re-checked there).
                settings = (config.source.prometheus, config.mimir.replication_factor)
                previous = last[0] if last else None  # read once: the UI's threads call too
                if previous is not None and previous[0] == settings:
                    source.kept_concurrency = previous[1].kept_concurrency
                last[:] = [(settings, source)]
            return source
        # The synthetic cluster depends only on its settings and the step-aligned end: within
        # one step every cycle (and the UI's charts) reads the same one, generated once.
        step = config.synthetic.step
        key = (config.synthetic, math.floor(now / step) * step, config.mimir.replication_factor)
        if not kept or kept[0][0] != key:
            kept[:] = [(key, build_source(config, now=now, env=environment))]
        return kept[0][1]

    return make
