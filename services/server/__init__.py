"""The long-running process: the aiohttp app (/healthz, /metrics, /chatkit, /slack/events) and `serve`."""
