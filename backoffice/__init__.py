"""Staff-facing HTTP surface, mounted at /backoffice."""
