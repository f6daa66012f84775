# The usual first Dockerfile for this project, kept only as the baseline of benchmarks/image.py:
# copy the whole checkout, then pip install the flow's runtime dependencies on top of it.
# Same base image argument as the real Dockerfile; PACKAGES pins the same direct dependencies as uv.lock
# (benchmarks/image.py passes them), pip resolves the rest.
ARG BASE_IMAGE=python:3.12-slim
FROM ${BASE_IMAGE}

WORKDIR /app
COPY . .
ARG PACKAGES="prefect prefect-docker httpx"
RUN pip install ${PACKAGES}

CMD ["prefect", "version"]
