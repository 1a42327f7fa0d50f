"""Stormwatch responders: who to page, what to say, and how to deliver it.

Never imports ``detector``: responders take plain typed inputs so they can be tested alone.
"""
