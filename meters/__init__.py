"""Meters: devices, reading ingestion and the meters' REST API."""
