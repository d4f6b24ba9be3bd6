"""Promenade: the control plane that promotes integrations from environment to environment."""
