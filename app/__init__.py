"""whimbrel.app."""
