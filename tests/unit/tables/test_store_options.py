"""RocksDB's memory per table partition (tables.store_options, issue #31): bounded by
default, Faust's own settings with zeros, nothing for the in-memory store."""

from __future__ import annotations

from leadstream.tables.tables import store_options
from tests.support import env_settings

MB = 1024 * 1024


def test_rocksdb_gets_bounded_memtables_and_block_cache() -> None:
    got = store_options(env_settings(LEADSTREAM_TABLE_STORE="rocksdb://"))
    assert got == {"write_buffer_size": 8 * MB, "max_write_buffer_number": 2,
                   "block_cache_size": 16 * MB, "block_cache_compressed_size": 16 * MB}
    tuned = store_options(env_settings(LEADSTREAM_TABLE_STORE="rocksdb://",
                                       LEADSTREAM_ROCKSDB_WRITE_BUFFER_MB=32,
                                       LEADSTREAM_ROCKSDB_BLOCK_CACHE_MB=0))
    assert tuned == {"write_buffer_size": 32 * MB, "max_write_buffer_number": 2}


def test_zeros_keep_fausts_defaults_and_memory_needs_none() -> None:
    assert store_options(env_settings(LEADSTREAM_TABLE_STORE="rocksdb://",
                                      LEADSTREAM_ROCKSDB_WRITE_BUFFER_MB=0,
                                      LEADSTREAM_ROCKSDB_BLOCK_CACHE_MB=0)) is None
    assert store_options(env_settings(LEADSTREAM_TABLE_STORE="memory://")) is None


def test_each_table_gets_a_dict_of_its_own() -> None:
    """Faust pops keys from the options it is given: one shared dict would lose them."""
    s = env_settings(LEADSTREAM_TABLE_STORE="rocksdb://")
    a, b = store_options(s), store_options(s)
    assert a == b and a is not b
