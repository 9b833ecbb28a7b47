FROM python:3.11.14-slim
WORKDIR /app
COPY pyproject.toml README.md requirements.lock ./
COPY leadstream ./leadstream
# the same pinned versions as CI (requirements.lock)
RUN pip install --no-cache-dir -c requirements.lock '.[rocksdb]' \
 && useradd --system --create-home leadstream \
 && mkdir -p /data && chown leadstream /data
USER leadstream
EXPOSE 8080 6066
