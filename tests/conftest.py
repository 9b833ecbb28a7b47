"""The suite's fixtures live in tests/support/fixtures.py (broker, Postgres, settings, the
pipeline factory); helpers shared by test modules live in tests/support/."""

pytest_plugins = ["tests.support.fixtures"]
