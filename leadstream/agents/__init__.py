"""Processing: the rules applied per record (`processor`) into a flush (`flush`), made durable
per batch (`batch`), the daily windows (`daily`), and their wiring into a Faust app
(`agent.build_topology`, called by `bootstrap`).
"""

from leadstream.agents.agent import Topology, build_topology
from leadstream.agents.batch import BatchRunner
from leadstream.agents.daily import DailyWindows
from leadstream.agents.flush import Flush, Outbox, WriteBack
from leadstream.agents.processor import LeadProcessor

__all__ = ["BatchRunner", "DailyWindows", "Flush", "LeadProcessor", "Outbox", "Topology",
           "WriteBack", "build_topology"]
