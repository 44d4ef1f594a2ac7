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
# Only what the package needs; never data/ or tests/ (third-party, non-commercial data).
COPY pyproject.toml README.md alembic.ini ./
COPY app/ ./app/
COPY workers/ ./workers/
COPY migrations/ ./migrations/
RUN pip install .

############################
# Runtime stage
############################
FROM python:3.11-slim AS runtime

RUN groupadd --system --gid 10001 real \
    && useradd --system --uid 10001 --gid real --home-dir /home/real --create-home real \
    && mkdir -p /var/lib/real-align/exports /var/lib/real-align/indexes \
    && chown -R real:real /var/lib/real-align

COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY --from=build --chown=real:real /src/alembic.ini ./alembic.ini
COPY --from=build --chown=real:real /src/migrations ./migrations
COPY --from=build --chown=real:real /src/app ./app
COPY --from=build --chown=real:real /src/workers ./workers

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
