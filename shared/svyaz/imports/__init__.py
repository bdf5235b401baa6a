"""Bulk import of a customer base or of orders from CSV or JSON Lines, local or on S3-compatible
object storage (AWS S3, Yandex Object Storage), into the same pipeline as every other channel.

* The file is streamed (chunks of the object, one row at a time); nothing holds the whole file.
* A file whose header (CSV) or first object (JSONL) has ``order_id`` is an **orders** file: each
  row is validated as a CRM order (:class:`svyaz.channels.crm.Order`, the webhook's own model)
  and becomes an ``order`` event. Any other file is a **customer base**: each row becomes an
  ``identify`` event (identifiers and traits, no touch).
* Each row is validated as the pipeline will validate it (schema, identifier normalization);
  a bad row is written to the rejects file (line number, field, reason; never the row's
  content) and skipped. A row is one event, so a row is applied whole or not at all.
* Event ids are ``import:<source key>:<row hash>`` (the source's identity and a hash of the
  row's content): re-running the same file is deduplicated by the pipeline and changes nothing.
* ``via="direct"`` applies each event with :func:`svyaz.entrypoints.process.apply_message`, the
  code ``process_event`` runs; ``via="queue"`` publishes to the events topic.

The package: ``sources`` (local files, S3), ``rows`` (streamed lines to CSV / JSONL rows),
``mapping`` (rows to events), ``run`` (the import itself).
"""

from svyaz.imports.mapping import Customer, RowMapper, row_key
from svyaz.imports.rows import Reject, RowError, file_format
from svyaz.imports.run import DEFAULT_BATCH, ImportStats, Via, default_via, parse_columns, run_import
from svyaz.imports.sources import ImportFailed, LocalSource, S3Source, Source, open_source

__all__ = [
    "DEFAULT_BATCH",
    "Customer",
    "ImportFailed",
    "ImportStats",
    "LocalSource",
    "Reject",
    "RowError",
    "RowMapper",
    "S3Source",
    "Source",
    "Via",
    "default_via",
    "file_format",
    "open_source",
    "parse_columns",
    "row_key",
    "run_import",
]
