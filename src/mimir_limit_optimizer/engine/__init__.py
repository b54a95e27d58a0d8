"""The pure engine: arrays, config and `now` in; recommendations and plans out.

No network, no files, no clock reads, no globals (see docs/architecture.md).
"""
