"""Kafka outside Faust, shared by every process that produces or administers topics: the producer
(``kudos replay``, HTTP ingest), the replay input formats, and topic creation and checks."""
