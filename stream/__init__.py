"""The worker process: the Faust app and its thin agent, the processor that feeds the scoring core,
and ``kudos rebuild`` (the same processor over the whole topic)."""
