"""The application: adapters, the chatkit conversation service, retrieval and indexing."""
