"""The candle job on Apache Flink (``python -m backend.flink run``), in its own venv (``make flink-venv``).

Nothing here is imported by the rest of the backend; the modules it imports from the project (readers, codec,
sinks, store) work with the older numpy and pyarrow that PyFlink pins.
"""
