"""Simulated traffic: Kapso payloads (`kapso`) and a whole sales line (`salesline`)."""

from leadstream.simulate.kapso import (
    kapso_message,
    open_loop,
    phone_for,
    post_kapso,
    signed,
)
from leadstream.simulate.salesline import Credentials, SalesLine

__all__ = ["Credentials", "SalesLine", "kapso_message", "open_loop", "phone_for",
           "post_kapso", "signed"]
