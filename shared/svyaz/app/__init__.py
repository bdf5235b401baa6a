"""The service layer: applying an event (``service``), the read models (``views``, ``reports``),
settings and logging, and the composition root that wires store, queue and service (``runtime``)."""
