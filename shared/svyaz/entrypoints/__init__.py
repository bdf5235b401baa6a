"""HTTP and Pub/Sub entry points behind ``functions/main.py``: authenticate, parse, call the
library, answer. No merge logic here."""
