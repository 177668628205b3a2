"""The comment-bait detector's evaluation harness (``kudos bait-eval``): labelled streams of real
background traffic and synthetic campaigns, replayed through the real pipeline and measured.

Modules, in the order a run uses them:

- :mod:`baiteval.data`: the real data sets (YouTube comment texts, Higgs and MathOverflow
  background traffic), read from the data directory;
- :mod:`baiteval.content`: the words of the synthetic posts and comments (bait templates, neutral
  sentences, reactions);
- :mod:`baiteval.synthesis`: :func:`~baiteval.synthesis.build_eval`, the labelled stream: synthetic
  campaigns and organic threads mixed into the background, with their labels;
- :mod:`baiteval.labels`: the labelled stream's records (:class:`~baiteval.labels.EvalStream`,
  :class:`~baiteval.labels.PostLabel`), shape names and time units;
- :mod:`baiteval.metrics`: :func:`~baiteval.metrics.report`, recall, time to throttle, false
  throttles and points withheld from what the detector did, against the targets;
- :mod:`baiteval.report`: :func:`~baiteval.report.format_report`, the printed report;
- :mod:`baiteval.pipeline`: :func:`~baiteval.pipeline.evaluate`, the streams (and the full real
  logs) replayed through Valkey, Tansu and a real worker.

All but :mod:`baiteval.pipeline` are pure: they read files under a data directory at most, talk to
neither Redis nor Kafka and print nothing.
"""
