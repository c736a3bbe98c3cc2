"""Scheduled self-update through The Update Framework: see docs/self-update.md.

``feed`` reads the signed feed, ``install`` makes a versioned environment, ``cycle`` is
one run in the agent, ``switch`` the program that switches and rolls back, ``schedule``
when runs happen, ``publish`` the publisher's side, ``cli`` ``ecr-connector update``.
"""
