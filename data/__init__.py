"""Storage: Weaviate (store, schema, embedded server), embeddings, the SQL database, shared records."""
