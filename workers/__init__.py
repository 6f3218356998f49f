"""K2 exchange workers: exchange WebSocket -> normalized v3 trade -> Avro -> Kafka.

Layout: one module per exchange (``exchanges/<name>.py``, registered by one line in
``k2/exchanges.py``) on a small shared base (``base``: endpoints, subscribe, parse);
pure normalization (``normalize``, ``symbols``); I/O at the edges (``connection`` for
the WebSocket lifecycle, ``producer`` for Kafka, ``dlq`` for frames that could not be
normalized, ``metrics``/``log`` for observability); ``run`` wires one worker process,
``supervisor`` runs several; ``simulator`` speaks every registered exchange's protocol
locally (one protocol module per venue in ``simulator/venues``).
"""
