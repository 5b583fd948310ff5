"""Settings from the environment and .env, and the base class for errors meant for the user."""
