"""The docs agent (openai-agents) and the offline model that answers without a language model."""
