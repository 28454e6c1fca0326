FROM python:3.11-slim
WORKDIR /app
COPY requirements.lock ./
RUN pip install --no-cache-dir --require-hashes -r requirements.lock
COPY . .
RUN pip install --no-cache-dir --no-deps -e .
RUN useradd --system saldo && mkdir -p /var/lib/saldo && chown saldo /var/lib/saldo
USER saldo
EXPOSE 8000
CMD ["saldo", "web", "--host", "0.0.0.0"]
