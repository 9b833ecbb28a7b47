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
TASKS = "tasks"
DLQ = "dlq"
TICKS = "ticks"
DAILY_CLOSED = "daily-closed"
DAILY = "daily"

#: source topics the worker consumes
SOURCES = (EVENTS, SARAH, COMMANDS)
#: derived topics the Postgres sink consumes
DERIVED = (LEADS, MESSAGES, STATUS_HISTORY, NOTES, DAILY, TASKS)
#: internal: timer ticks (one per partition) and closed daily windows awaiting a summary
INTERNAL = (TICKS, DAILY_CLOSED)
ALL = (*SOURCES, *DERIVED, DLQ, *INTERNAL)
#: compacted: only the newest record per key matters, and the key is the record's own entity
#: (not `messages`: keyed by lead, one record per message; see broker.clients.topic_configs)
COMPACTED = (LEADS,)


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
    ticks: str
    daily_closed: str
    daily: str
    tasks: str

    @classmethod
    def from_settings(cls, s: Settings) -> TopicNames:
        return cls(**{n.replace("-", "_"): full_name(s, n) for n in ALL})

    def all(self) -> list[str]:
        return [self.events, self.sarah, self.commands, self.leads, self.messages,
                self.status_history, self.notes, self.dlq, self.ticks, self.daily_closed,
                self.daily, self.tasks]

    def derived(self) -> list[str]:
        return [self.leads, self.messages, self.status_history, self.notes, self.daily,
                self.tasks]

    def sources(self) -> list[str]:
        return [self.events, self.sarah, self.commands]


def full_name(s: Settings, short: str) -> str:
    """A topic's full name: derived and internal topics take the derived prefix when one is
    set (a reprocessing fleet), the sources and the dead letters never."""
    return s.topic(short, derived=short in (*DERIVED, *INTERNAL))
