"""whimbrel.widgets."""
