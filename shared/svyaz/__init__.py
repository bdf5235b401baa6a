"""svyaz: stitch every identifier a customer leaves, online and offline, into one profile."""

__version__ = "0.1.0"
