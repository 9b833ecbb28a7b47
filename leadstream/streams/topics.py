"""Topic names (contract §3). Every per-lead topic is keyed by lead_key and has the same
partition count, so one lead's records sit on the same partition number everywhere."""

from __future__ import annotations

from dataclasses import dataclass

from leadstream.config import Settings

EVENTS = "events"
SARAH = "sarah"
COMMANDS = "commands"
LEADS = "leads"
MESSAGES = "messages"
STATUS_HISTORY = "status-history"
NOTES = "notes"
DLQ = "dlq"

#: source topics the worker consumes
SOURCES = (EVENTS, SARAH, COMMANDS)
#: derived topics the Postgres sink consumes
DERIVED = (LEADS, MESSAGES, STATUS_HISTORY, NOTES)
ALL = (*SOURCES, *DERIVED, DLQ)
#: compacted: only the newest record per key matters
COMPACTED = (LEADS, MESSAGES)


@dataclass(frozen=True)
class TopicNames:
    events: str
    sarah: str
    commands: str
    leads: str
    messages: str
    status_history: str
    notes: str
    dlq: str

    @classmethod
    def from_settings(cls, s: Settings) -> TopicNames:
        return cls(**{n.replace("-", "_"): s.topic(n) for n in ALL})

    def all(self) -> list[str]:
        return [self.events, self.sarah, self.commands, self.leads, self.messages,
                self.status_history, self.notes, self.dlq]

    def derived(self) -> list[str]:
        return [self.leads, self.messages, self.status_history, self.notes]

    def sources(self) -> list[str]:
        return [self.events, self.sarah, self.commands]
