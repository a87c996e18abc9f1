"""The logs: reading them, collecting them from many folders, and querying them."""
