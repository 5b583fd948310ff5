"""The Discord adapter: gateway client, app commands, message splitting and streaming, feedback buttons."""
