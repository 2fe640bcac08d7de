"""Fake kind, helm, kubectl and docker for orchestration tests (runner and PATH seams)."""
