"""Every event and command on Parley's topics (pydantic v2, frozen, versioned)."""
