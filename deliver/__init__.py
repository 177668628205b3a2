"""The deliverer process (``kudos deliver``): perk unlocks and bait alerts from the Redis outboxes
to Kafka, the live channels and signed webhooks."""
