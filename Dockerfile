# One container, the whole of crab: `docker build -t crab . && docker run -p 50051:50051 -v crab-data:/data crab`
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    CRAB_DATA_DIR=/data \
    CRAB_HOST=0.0.0.0 \
    CRAB_PORT=50051

WORKDIR /app
COPY pyproject.toml README.md ./
COPY crab ./crab
RUN pip install --no-cache-dir . \
 && useradd --system --uid 10001 --home-dir /data crab \
 && mkdir -p /data && chown crab /data

USER 10001
VOLUME ["/data"]
EXPOSE 50051

# grpc.health.v1 over the real port, with grpclib's own client.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["python", "-m", "crab.healthcheck"]

# Put TLS in front (or pass --tls-cert/--tls-key) before exposing this beyond a trusted network.
CMD ["crab", "serve", "--host", "0.0.0.0"]
