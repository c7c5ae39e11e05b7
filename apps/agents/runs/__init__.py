"""Long agent runs on Celery (docs/architecture.md, "Long runs"): services.py starts, cancels
and lists them; executor.py runs one under a fenced lease; the janitor re-queues runs whose
worker died."""
