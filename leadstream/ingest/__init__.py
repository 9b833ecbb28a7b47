"""Inbound payload parsing (Kapso v2 and raw Meta Cloud API) into `InboundEvent`s. Pure: no I/O."""

from leadstream.ingest.common import ParseError, Workspace

__all__ = ["ParseError", "Workspace"]
