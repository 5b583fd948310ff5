"""Insights from what the bot stores: coverage gaps, feedback, usage, index health; report and /admin."""
