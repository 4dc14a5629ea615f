"""The local stack (``make run``): the apps under ``chalice local``, the dashboard's server and
the sample data."""
