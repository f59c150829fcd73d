"""Tornado adapters: they parse HTTP and WebSocket traffic and hand events to the runtime."""
