"""The team's workflow services (issue #29): automatic assignment of new leads."""

from leadstream.team.assign import AutoAssigner, AutoAssignService

__all__ = ["AutoAssignService", "AutoAssigner"]
