"""Between the adapters and the agent: the ask contract, chatkit store, citations, failures, metrics."""
