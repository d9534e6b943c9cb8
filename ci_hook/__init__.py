"""Redline's CI hook: the pytest plugin, CI report ingestion, build-command wrapping, bundles and the inbox."""
