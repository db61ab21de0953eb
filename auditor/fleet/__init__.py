"""Distributed runs: targets handed to `auditor worker` processes through a Celery broker."""
