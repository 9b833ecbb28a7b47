"""Reconciliation from Kapso's API (issue #27): the client, the reconciler, its service."""

from leadstream.reconcile.client import ApiError, KapsoApi
from leadstream.reconcile.reconciler import NumberReport, Reconciler
from leadstream.reconcile.service import ReconcileService

__all__ = ["ApiError", "KapsoApi", "NumberReport", "ReconcileService", "Reconciler"]
