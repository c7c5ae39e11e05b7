# Production-like image for docker-compose.yml (Docker is optional: `make run` needs none).
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 DJANGO_SETTINGS_MODULE=aisaas.settings.production
WORKDIR /app
COPY pyproject.toml README.md ./
COPY aisaas ./aisaas
COPY apps ./apps
RUN pip install --no-cache-dir .
COPY . .
RUN SECRET_KEY=build FIELD_ENCRYPTION_KEYS=build DATABASE_URL=postgres://build@localhost/build REDIS_URL=redis://localhost \
    python manage.py collectstatic --noinput
EXPOSE 8000
CMD ["daphne", "-b", "0.0.0.0", "-p", "8000", "aisaas.asgi:application"]
