"""The comment-bait detector's evaluation harness (``kudos bait-eval``): labelled streams of real
background traffic and synthetic campaigns, replayed through the real pipeline and measured."""
