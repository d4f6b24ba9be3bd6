"""Runtime drivers: how a data plane starts, routes to and stops integration instances."""
