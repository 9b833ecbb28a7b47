"""The log's contract: topic names and the record schemas written to them."""
