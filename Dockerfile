# The suggest-activity flow image: Prefect + the flow code, used by the Prefect worker container and, on a
# docker-type work pool, by the per-run containers.
#
# Builds with the classic builder, BuildKit and the Docker SDK alike: no BuildKit-only syntax (no RUN --mount,
# no heredocs). No secret goes into any layer: API URLs and keys are given to containers at run time.
#
#   docker build -t suggest-activity:dev .
#   docker build --build-arg BASE_IMAGE=my-mirror/python:3.12-slim -t suggest-activity:dev .
ARG BASE_IMAGE=python:3.12-slim
FROM ${BASE_IMAGE}

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

# A fixed non-root uid/gid, so runAsNonRoot checks and volume permissions can rely on the number.
# The home dir is writable: Prefect keeps its profile and local storage in ~/.prefect.
# No setuid/setgid binaries (su, mount, passwd...): nothing in a container of this image can gain privileges.
RUN groupadd --system --gid 10001 prefect \
 && useradd --system --uid 10001 --gid 10001 --home-dir /home/prefect --create-home --shell /usr/sbin/nologin prefect \
 && find / -xdev -perm /6000 -type f -exec chmod a-s {} +

WORKDIR /opt/prefect/suggest-activity

# Dependencies: one layer that depends only on pyproject.toml and uv.lock, so a change to the flow code reuses it.
# - uv comes from PyPI into a throw-away venv (pip trusts the system CA bundle through PIP_CERT where a base image
#   sets it; UV_SYSTEM_CERTS makes uv use the system store too, which on a machine behind a TLS-intercepting proxy
#   holds the proxy's CA; on the public python image it is the usual public roots).
# - `uv export --locked` fails if uv.lock does not match pyproject.toml, and emits exact versions with hashes.
# - `--prune pulumi --prune pulumi-docker` leaves out the deployment tooling (Pulumi and what only it needs: grpcio,
#   protobuf, the OTLP exporters...): the image runs flows and the worker, never the Pulumi program. Packages that
#   Prefect also needs stay in. `uv pip check` below fails the build if that pruning ever breaks a dependency.
#   `--prune paramiko`: docker's ssh extra is for the program reaching an ssh:// daemon, not for the worker.
# - `--no-deps --require-hashes`: exactly the exported set, each verified against the lock's hash; no resolution.
# - Bytecode is compiled at build time: the non-root user cannot write __pycache__ into /opt/venv, and Prefect's
#   imports would otherwise be compiled on every container start.
COPY pyproject.toml uv.lock ./
# The uv that installs them (only during the build; it is not left in the image).
ARG UV_VERSION=0.13.9
RUN set -eux \
 && python -m venv /tmp/uv-tool \
 && /tmp/uv-tool/bin/pip install --no-cache-dir --disable-pip-version-check "uv==${UV_VERSION}" \
 && export UV_SYSTEM_CERTS=1 UV_NO_CACHE=1 UV_PYTHON_DOWNLOADS=never UV_PYTHON="$(command -v python)" \
 && /tmp/uv-tool/bin/uv export --locked --no-dev --no-emit-project --prune pulumi --prune pulumi-docker --prune paramiko \
        --quiet --output-file /tmp/requirements.txt \
 && /tmp/uv-tool/bin/uv venv /opt/venv \
 && /tmp/uv-tool/bin/uv pip install --python /opt/venv/bin/python --no-deps --require-hashes --compile-bytecode \
        -r /tmp/requirements.txt \
 && /tmp/uv-tool/bin/uv pip check --python /opt/venv/bin/python \
 && rm -rf /tmp/uv-tool /tmp/requirements.txt /root/.cache

# The code last: a change here rebuilds only these small layers. Owned by root, read-only for the worker.
# worker/ is what the worker container runs besides Prefect; the flow, which changes most, comes last.
COPY worker/ ./worker/
COPY flows/ ./flows/

USER 10001:10001

# No HEALTHCHECK here: per-run containers of a docker pool use this image too and serve nothing. The worker
# container gets its healthcheck from the deployment (infra/worker.py):
#   python -m worker.healthcheck --pool <pool>
# together with `prefect worker start ... --with-healthcheck`.
CMD ["prefect", "version"]
