"""whimbrel.backends.lab."""
