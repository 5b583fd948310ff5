"""The Slack adapter: Bolt app wiring, one threaded reply, mrkdwn blocks, and the /reindex command."""
