"""The web process: read API, HTTP ingest, the live websocket push and the page, on one port."""
