"""Shared fixtures: the harness of both tiers is available to every test."""

import os

# PTB 22 warns that time spans become timedelta; opt in now (the code handles both).
os.environ.setdefault("PTB_TIMEDELTA", "1")

from tests.harness.fixtures import fake_bot_api, recording_request

__all__ = ["fake_bot_api", "recording_request"]
