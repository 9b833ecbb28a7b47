"""Kafka clients: factories for producers, consumers and admin, broker-agnostic.

Production is Apache Kafka. The embedded broker (Tansu) differs in a few measured ways; the
workarounds live in `broker.tansu` and are switched on only by `kafka_flavor == "tansu"`.
"""
