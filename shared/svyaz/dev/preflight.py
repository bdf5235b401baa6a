"""Start-up checks of the command line: is the store (and the queue) this command is about to use
really there? A missing emulator or missing credentials is one line naming what to set, before
anything is accepted, never a traceback or an event taken and then lost.

Not deployed: a Cloud Function finds its store through its service account, always there.
"""

from __future__ import annotations

import os
import socket

from svyaz.app.config import Settings

FIRESTORE_HELP = (
    "set FIRESTORE_EMULATOR_HOST=host:port for the emulator "
    "(`gcloud emulators firestore start --host-port=127.0.0.1:8085`), or credentials for a real "
    "project (GOOGLE_APPLICATION_CREDENTIALS, or `gcloud auth application-default login`) with "
    "SVYAZ_GCP_PROJECT"
)
PUBSUB_HELP = (
    "start it (`gcloud beta emulators pubsub start --host-port=127.0.0.1:8086`) or unset "
    "PUBSUB_EMULATOR_HOST to use the in-process queue"
)


class Unavailable(RuntimeError):
    """What this command needs is not there; the message is one line saying what to set."""


def _answers(host_port: str, timeout: float = 2.0) -> bool:
    host, _, port = host_port.rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


def _has_credentials() -> bool:
    import google.auth
    from google.auth.exceptions import DefaultCredentialsError

    try:
        google.auth.default()
    except DefaultCredentialsError:
        return False
    return True


def check_firestore(settings: Settings, *, probe: bool = True) -> None:
    """Raise ``Unavailable`` unless Firestore (the emulator or a real project) can be reached.
    ``probe`` also reads one (absent) document of a real project, within a few seconds."""
    emulator = os.environ.get("FIRESTORE_EMULATOR_HOST")
    if emulator:
        if not _answers(emulator):
            raise Unavailable(
                f"the Firestore emulator at {emulator} (FIRESTORE_EMULATOR_HOST) does not answer: start "
                f"it (`gcloud emulators firestore start --host-port={emulator}`) or unset the variable"
            )
        return
    if not _has_credentials():
        raise Unavailable(f"Firestore has no emulator and no credentials: {FIRESTORE_HELP}")
    if probe:
        _probe_project(settings)


def _probe_project(settings: Settings) -> None:
    from google.cloud import firestore

    try:
        client = firestore.Client(project=settings.gcp_project, database=settings.firestore_database)
        client.collection("profiles").document("svyaz-preflight").get(timeout=8, retry=None)
    except Exception as exc:  # any failure means the service could not work: say which
        raise Unavailable(
            f"Firestore of project {settings.gcp_project!r} (SVYAZ_GCP_PROJECT), database "
            f"{settings.firestore_database!r} cannot be read: {type(exc).__name__}"
        ) from None


def check_pubsub() -> None:
    """Raise ``Unavailable`` when PUBSUB_EMULATOR_HOST is set but nothing answers there."""
    emulator = os.environ.get("PUBSUB_EMULATOR_HOST")
    if emulator and not _answers(emulator):
        raise Unavailable(
            f"the Pub/Sub emulator at {emulator} (PUBSUB_EMULATOR_HOST) does not answer: {PUBSUB_HELP}"
        )


def check(settings: Settings, *, store: bool = True, queue: bool = True) -> None:
    """The checks of what a command about to run on ``settings`` uses."""
    if store and settings.store == "firestore":
        check_firestore(settings)
    if queue:
        check_pubsub()
