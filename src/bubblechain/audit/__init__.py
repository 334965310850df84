"""Independent verification of a whole training record, trusting only the pinned genesis."""

from .core import AuditOptions, AuditReport, audit

__all__ = ["AuditOptions", "AuditReport", "audit"]
