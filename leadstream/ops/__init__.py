"""Operator tools: dead-letter listing and re-drive."""
