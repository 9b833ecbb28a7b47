"""Processing: the rules applied per record (`processor`) into a flush (`flush`), made durable
per batch (`batch`), the daily windows (`daily`), and their wiring into the Faust app (`agent`,
imported by the worker: importing it makes the app).
"""

from leadstream.agents.batch import BatchRunner
from leadstream.agents.daily import DailyWindows
from leadstream.agents.flush import Flush, Outbox, WriteBack
from leadstream.agents.processor import LeadProcessor

__all__ = ["BatchRunner", "DailyWindows", "Flush", "LeadProcessor", "Outbox", "WriteBack"]
