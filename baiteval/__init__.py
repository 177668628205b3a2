"""The comment-bait detector's evaluation harness (``kudos bait-eval``): labelled streams of real
background traffic, synthetic campaigns and organic posts, in a tuning and a held-out split,
replayed through the real pipeline or the pure detector, and measured.

Modules, in the order a run uses them:

- :mod:`baiteval.data`: the real data sets (YouTube comment texts, Higgs and MathOverflow
  background traffic), read from the data directory;
- :mod:`baiteval.grammar`: the template grammar bait wordings are written in;
- :mod:`baiteval.content`: the words of the synthetic posts and comments, and the tuning set of
  bait wordings;
- :mod:`baiteval.heldout`: the held-out wordings and the held-out campaign family (not to be read
  by whoever tunes the detector);
- :mod:`baiteval.builder`: the machinery shapes are written with (ids, people, arrival times);
- :mod:`baiteval.campaigns` and :mod:`baiteval.organic`: the campaign and organic shapes;
- :mod:`baiteval.synthesis`: :func:`~baiteval.synthesis.build_eval`, the labelled stream of a
  split, with its labels;
- :mod:`baiteval.labels`: the labelled stream's records (:class:`~baiteval.labels.EvalStream`,
  :class:`~baiteval.labels.PostLabel`), shape and split names, time units;
- :mod:`baiteval.replay`: :func:`~baiteval.replay.replay`, the pure detector over a stream,
  partition by partition, scored as the worker scores;
- :mod:`baiteval.metrics`: :func:`~baiteval.metrics.report`, recall, time to throttle, false
  throttles and points withheld from what the detector did, against the targets;
- :mod:`baiteval.loso`: the leave-one-shape-out calibration of the threshold;
- :mod:`baiteval.report`: the printed report;
- :mod:`baiteval.pipeline`: the streams (and the full real logs) replayed through Valkey, Tansu
  and a real worker;
- :mod:`baiteval.suite`: :func:`~baiteval.suite.run_suite`, everything ``kudos bait-eval``
  prints, in its order.

All but :mod:`baiteval.pipeline` and :mod:`baiteval.suite` are pure: they read files under a data
directory at most, talk to neither Redis nor Kafka and print nothing.
"""
