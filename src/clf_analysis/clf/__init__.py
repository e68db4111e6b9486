"""clf layer."""
