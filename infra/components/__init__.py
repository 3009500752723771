"""One ComponentResource per concern: the platform, and per model registry, tables, serving, monitor, jobs."""
