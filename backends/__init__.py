"""whimbrel.backends."""
