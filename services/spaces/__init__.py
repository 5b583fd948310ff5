"""Spaces: which sources a chat place searches, who may ask there, and how the bot answers."""
