"""Files to indexed chunks: discovery, parsing, chunking, the pipelined run, and what a run reports."""
