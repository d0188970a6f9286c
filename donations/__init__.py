"""donations: reader revenue for independent newsrooms."""
