"""whimbrel.themes."""
