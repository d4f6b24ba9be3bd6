# The Promenade control plane. `docker run -p 8000:8000 IMAGE` runs everything in one container
# on embedded defaults; compose.yaml runs the scaled setup (`api`, `worker`, `migrate`).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY app ./app
COPY workers ./workers
RUN pip install . \
    && useradd --system --create-home --home-dir /var/lib/promenade --uid 10001 promenade \
    && install -d -o promenade -g promenade /var/lib/promenade/data

USER promenade
WORKDIR /var/lib/promenade
# LOCAL_PROCESS runs a build's artifact in the worker's working directory: the README's
# sample, `python examples/greeter/app.py`, runs from here too.
COPY --chown=promenade:promenade examples ./examples
# Embedded mode (no PROMENADE_DATABASE_URL) keeps its files here; a worker its runtime state.
ENV PROMENADE_DATA_DIR=/var/lib/promenade/data \
    PROMENADE_HOST=0.0.0.0 \
    PROMENADE_GATEWAY_HOST=0.0.0.0 \
    PROMENADE_GATEWAY_URL=http://localhost:8080
# 8000: GraphQL; 8080: the gateway in front of running integrations.
EXPOSE 8000 8080

ENTRYPOINT ["promenade"]
CMD ["up"]
