"""Reports: figures (matplotlib, PNG), tables and the clickable provenance page."""
