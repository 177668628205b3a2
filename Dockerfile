# syntax=docker/dockerfile:1
# Kudos image: one image for every long-running process (`kudos worker`, `kudos web`,
# `kudos deliver`) and the one-shot `kudos topics`; docker-compose.yml picks the command.
#
# Stage 1 fetches the dependencies pinned in requirements.lock (`make lock`), every file checked
# against its hash, as wheels (compilers allowed here, in case one has no wheel for this platform),
# and builds the kudos wheel. Stage 2 installs exactly those wheels from the bind mount, offline and
# without resolving anything: no compiler, no source tree and no wheel files end up in the final
# image. The lock holds the runtime dependencies only: not the embedded extra (the Tansu and Valkey
# binaries of `kudos up`; production runs real Kafka and Redis), not the dev tools.
# The Python version must satisfy pyproject's requires-python (tests/test_compose.py checks it).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# first, so a source change reuses this layer
COPY requirements.lock ./
RUN pip wheel --no-cache-dir --require-hashes --wheel-dir /wheels/deps -r requirements.lock
COPY pyproject.toml README.md ./
COPY baiteval ./baiteval
COPY broker ./broker
COPY deliver ./deliver
COPY kudos ./kudos
COPY leaderboard ./leaderboard
COPY stream ./stream
COPY web ./web
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .
# fail the build if the package data (Lua scripts, scoring.toml, the page) missed the wheel
RUN python -c "import glob, zipfile; names = set(zipfile.ZipFile(glob.glob('/wheels/kudos-*.whl')[0]).namelist()); need = {'leaderboard/scoring.toml', 'leaderboard/store/lua/apply.lua', 'web/static/index.html'}; assert need <= names, sorted(need - names)"

FROM ${PYTHON_IMAGE} AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# --no-deps: the locked set is the whole set (pip resolves nothing); `pip check` then fails the
# build if it does not satisfy what the kudos wheel requires (a lock older than pyproject.toml)
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --no-deps /wheels/deps/*.whl \
    && pip install --no-cache-dir --no-index --no-deps /wheels/kudos-*.whl \
    && pip check \
    && useradd --create-home --uid 10001 --user-group kudos
USER kudos
WORKDIR /home/kudos
ENV KUDOS_HOME=/home/kudos/.kudos \
    KUDOS_WEB_HOST=0.0.0.0
EXPOSE 8000
# For the default command (`kudos web`): /healthz answers 200 only when Redis answers. The port
# comes from the same settings the process reads (KUDOS_WEB_PORT or the config file).
# docker-compose.yml gives the worker and the deliverer health checks of their own.
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request as u; from leaderboard.settings import load_settings as s; u.urlopen(f'http://127.0.0.1:{s().web.port}/healthz', timeout=4)"]
CMD ["kudos", "web"]
