"""The Faust side of Kudos: the app, its topics, and the thin agent that feeds the scoring core."""
