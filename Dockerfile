FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY leadstream ./leadstream
RUN pip install --no-cache-dir '.[rocksdb]' \
 && useradd --system --create-home leadstream \
 && mkdir -p /data && chown leadstream /data
USER leadstream
