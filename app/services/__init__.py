"""The domain rules. Plain async functions over a session; they raise ``app.services.errors``."""
