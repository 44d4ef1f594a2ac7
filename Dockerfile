# real-align: API, Celery worker and beat in one image (pick with the command: api | worker | beat | migrate).

############################
# Build stage
############################
FROM python:3.11-slim AS build

# build-essential: hnswlib has no wheel for every platform and compiles from source.
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*

# Build hnswlib without -march=native so the image runs on any x86-64 CPU, not just the build host's.
ENV HNSWLIB_NO_NATIVE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN python -m venv /opt/venv
ENV PATH="/opt/venv/bin:$PATH"

# Install the CPU-only torch build FIRST: an unpinned torch (pulled in by sentence-transformers)
# resolves from PyPI to the CUDA build, which drags in several GB of nvidia-* wheels we never use.
RUN pip install --upgrade pip \
    && pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu

WORKDIR /src
# The wheel holds every package of pyproject's package list (app, workers, real_align: the `export` and
# `ingest` commands are the real_align client); never data/ or tests/ (third-party, non-commercial data).
# tests/deploy/test_image.py builds the wheel from exactly these COPY lines and runs its commands.
COPY pyproject.toml README.md ./
COPY app/ ./app/
COPY workers/ ./workers/
COPY real_align/ ./real_align/
RUN pip wheel --no-deps --wheel-dir /wheels . \
    && pip install /wheels/*.whl

############################
# Runtime stage
############################
FROM python:3.11-slim AS runtime

RUN groupadd --system --gid 10001 real \
    && useradd --system --uid 10001 --gid real --home-dir /home/real --create-home real \
    && mkdir -p /var/lib/real-align/exports /var/lib/real-align/indexes \
    && chown -R real:real /var/lib/real-align

COPY --from=build /opt/venv /opt/venv
# The code is the installed wheel; /app (the working directory) holds the migrations `real-align migrate`
# runs (app/migrate.py project_root).
WORKDIR /app
COPY --chown=real:real alembic.ini ./alembic.ini
COPY --chown=real:real migrations/ ./migrations/

ENV PATH="/opt/venv/bin:$PATH" \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    REAL_ENV=prod \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/home/real

USER real
EXPOSE 8000
ENTRYPOINT ["real-align"]
CMD ["api"]
