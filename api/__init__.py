"""Machine-facing HTTP: provider webhooks (and the /api/v1 integration API)."""
