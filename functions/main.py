"""Cloud Functions entry points: one deployed function per target (``--target``/``entry_point``).

The targets are derived from the registry (``svyaz.entrypoints.registry``): each hands the
request, or the Pub/Sub CloudEvent, to its entry point with the process's runtime, wrapped in
the one error and logging handler. A deployed function checks its own secrets at start-up.
"""

from __future__ import annotations

import os

import flask

from svyaz.app import logs, runtime
from svyaz.entrypoints.http import framework_error
from svyaz.entrypoints.registry import BY_TARGET, FUNCTIONS, cloud_function

logs.configure()
# The framework's own errors (its 404 pages, malformed requests) answer JSON like ours. The
# framework runs this module inside the context of the app it builds for the target.
if flask.has_app_context():
    flask.current_app.register_error_handler(Exception, framework_error)
    flask.current_app.register_error_handler(500, framework_error)  # over the framework's text page

if (target := os.environ.get("FUNCTION_TARGET")) in BY_TARGET:
    runtime.current().settings.require(*BY_TARGET[target].settings)

globals().update({function.target: cloud_function(function) for function in FUNCTIONS})
