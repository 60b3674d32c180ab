"""The class's JupyterHub (hub/jupyterhub_config.py loads these): accounts, each server's network fence and disk
watch, and what a student is told when their server cannot start or was stopped."""
