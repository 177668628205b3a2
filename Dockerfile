# Kudos image: one image for workers (`kudos worker`) and web (`kudos web`).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY kudos ./kudos
COPY leaderboard ./leaderboard
COPY stream ./stream
COPY web ./web
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 kudos
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER kudos
WORKDIR /home/kudos
ENV KUDOS_HOME=/home/kudos/.kudos
EXPOSE 8000
CMD ["kudos", "web"]
