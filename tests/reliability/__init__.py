"""Reliability tests: each one names the promise (DESIGN §5, §7) it proves."""
