"""Development tooling: the fake Polygon server, sample data and the local stack.

Never vendored into a Lambda.
"""
