# Ferret server image. Multi-stage: the build stage installs with `make install` (the README's install
# path) into /opt/ferret/.venv; the runtime stage copies only that and the source onto python:slim.
#   docker build -t ferret:cpu .
#   docker build -t ferret:cuda --build-arg VARIANT=cuda .
# VARIANT picks the torch 2.13.0 wheel index (cpu or cu128) and, for cuda, the faiss GPU extra; CUDA
# runtime libraries come with the wheels, the driver from the host (--gpus all, NVIDIA container toolkit).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ARG VARIANT=cpu
ARG EXTRAS=distributed
RUN apt-get update && apt-get install -y --no-install-recommends make build-essential \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/ferret
COPY pyproject.toml Makefile README.md ./
COPY ferret ./ferret
RUN case "$VARIANT" in \
      cpu)  torch_index=https://download.pytorch.org/whl/cpu; extras="$EXTRAS" ;; \
      cuda) torch_index=https://download.pytorch.org/whl/cu128; extras="$EXTRAS,gpu" ;; \
      *) echo "VARIANT must be cpu or cuda, not $VARIANT" >&2; exit 1 ;; \
    esac \
    && make install PYTHON=python3.11 TORCH_INDEX="$torch_index" EXTRAS="$extras" \
    && rm -rf /root/.cache

FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 ferret \
    && useradd --system --uid 10001 --gid ferret --home-dir /home/ferret --create-home ferret \
    && mkdir -p /data /models /etc/ferret && chown ferret:ferret /data /models
COPY --from=build /opt/ferret /opt/ferret
COPY docker/ferret.toml /etc/ferret/ferret.toml
ENV PATH=/opt/ferret/.venv/bin:$PATH \
    HF_HUB_OFFLINE=1 \
    HF_HOME=/models/.hf \
    PYTHONUNBUFFERED=1
# /data: collections (the durable store and index snapshots); /models: model weights, read-only.
VOLUME ["/data", "/models"]
EXPOSE 50051 9100
USER ferret
WORKDIR /home/ferret
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["ferret", "health", "--address", "127.0.0.1:50051"]
ENTRYPOINT ["ferret"]
CMD ["serve", "--config", "/etc/ferret/ferret.toml"]
