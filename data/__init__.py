"""Storage: Weaviate (connection, store, writer, schema, embedded server), embeddings, SQL, records."""
