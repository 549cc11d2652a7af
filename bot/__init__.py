"""Siaga112: a Telegram intake channel for a city emergency call center."""

__version__ = "0.1.0"
