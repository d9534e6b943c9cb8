"""pytest plugin (placeholder until the CI-hook issue lands)."""
