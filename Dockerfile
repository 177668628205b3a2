# syntax=docker/dockerfile:1
# Kudos image: one image for every long-running process (`kudos worker`, `kudos web`,
# `kudos deliver`) and the one-shot `kudos topics`; docker-compose.yml picks the command.
#
# Stage 1 builds the kudos wheel and a wheel of every dependency (compilers allowed here, in case
# a dependency has no wheel for this platform). Stage 2 installs those wheels from the bind mount,
# offline: no compiler, no source tree and no wheel files end up in the final image.
# The Python version must satisfy pyproject's requires-python (tests/test_compose.py checks it).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY baiteval ./baiteval
COPY broker ./broker
COPY deliver ./deliver
COPY kudos ./kudos
COPY leaderboard ./leaderboard
COPY stream ./stream
COPY web ./web
RUN pip wheel --no-cache-dir --wheel-dir /wheels .
# fail the build if the package data (Lua scripts, scoring.toml, the page) missed the wheel
RUN python -c "import glob, zipfile; names = set(zipfile.ZipFile(glob.glob('/wheels/kudos-*.whl')[0]).namelist()); need = {'leaderboard/scoring.toml', 'leaderboard/lua/apply.lua', 'web/static/index.html'}; assert need <= names, sorted(need - names)"

FROM ${PYTHON_IMAGE} AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels kudos \
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
