"""Files on disk: one shard reader/writer for Parquet and JSONL (`shards`), corpus reading
(`corpus`), and output folders with atomic writes, completion markers and the manifest (`output`)."""
