"""Reads run directories and draws reports; never trains."""
