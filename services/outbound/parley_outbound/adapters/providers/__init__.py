"""One module per provider; `registry.adapter_for` picks the one for a channel."""
