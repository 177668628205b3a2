"""The web process: read API, static page, and (later) the live websocket push, on one port."""
