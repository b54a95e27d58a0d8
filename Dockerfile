# Mimir Limit Optimizer: `mlo run` in a slim Python runtime, as a non-root user, with a
# read-only root filesystem and its state on a volume.
#
#   docker build -t mimir-limit-optimizer:0.1.0 .
#   docker run --read-only -v mlo-state:/var/lib/mimir-limit-optimizer \
#     -v $PWD/mlo.yaml:/etc/mimir-limit-optimizer/config.yaml:ro mimir-limit-optimizer:0.1.0
#
# CI has no container runtime: tests/deploy/test_image.py lints this file with hadolint and
# runs its steps (build the wheel, install it into a clean virtualenv, `mlo run --once`, serve
# /healthz) instead (docs/kubernetes.md).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: the wheel, installed with its dependencies into a virtualenv --------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
# A C compiler for the engine's compiled point passes (setup.py); it stays in this stage. The
# Debian release is fixed by the image tag, which pins what apt installs.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY src ./src
# The compiled point passes are optional for pip (a machine without a compiler still gets a
# working package); the image must have them: the import fails the build if they are missing.
RUN python -m pip wheel --no-deps --wheel-dir /wheels . \
 && python -m venv /opt/mlo \
 && /opt/mlo/bin/pip install /wheels/*.whl \
 && /opt/mlo/bin/python -c "import sys; from mimir_limit_optimizer.engine import compiled; sys.exit(compiled.point_passes() is None)" \
 && /opt/mlo/bin/pip uninstall --yes pip setuptools

# --- runtime ---------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="mimir-limit-optimizer" \
      org.opencontainers.image.description="Recommends, applies and guards per-tenant Grafana Mimir limits" \
      org.opencontainers.image.licenses="Apache-2.0"
# A fixed numeric UID/GID (Kubernetes' runAsNonRoot needs a numeric user) and the state
# directory it owns; nothing else is writable.
RUN groupadd --system --gid 10001 mlo \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin mlo \
 && mkdir -p /var/lib/mimir-limit-optimizer /etc/mimir-limit-optimizer \
 && chown 10001:10001 /var/lib/mimir-limit-optimizer
COPY --from=build /opt/mlo /opt/mlo
# No bytecode writes (read-only root), unbuffered logs, matplotlib's cache on /tmp (mounted as
# an emptyDir by the chart), the state directory as the working directory (relative dataDir).
ENV PATH=/opt/mlo/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MPLCONFIGDIR=/tmp/matplotlib \
    HOME=/tmp \
    MLO_CONFIG=/etc/mimir-limit-optimizer/config.yaml
WORKDIR /var/lib/mimir-limit-optimizer
VOLUME ["/var/lib/mimir-limit-optimizer"]
USER 10001:10001
EXPOSE 8080 8081 8082
ENTRYPOINT ["mlo", "run"]
