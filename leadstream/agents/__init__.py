"""Processing: the rules applied per record (`processor`), the daily windows (`daily`), and
their wiring into the Faust app (`agent`, imported by the worker: importing it makes the app).
"""

from leadstream.agents.daily import DailyWindows
from leadstream.agents.processor import LeadProcessor

__all__ = ["DailyWindows", "LeadProcessor"]
