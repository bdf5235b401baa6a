"""Static checks of the Terraform in infra/ (parsed with python-hcl2; never init, plan or validate:
providers cannot be downloaded here). Where a value is computed from the function table, the table file
is evaluated for real with `terraform console` when terraform is on PATH."""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import subprocess
import textwrap

import hcl2
import pytest

INFRA = pathlib.Path(__file__).resolve().parents[2] / "infra"
TERRAFORM = shutil.which("terraform")
TF_ENV = {**os.environ, "CHECKPOINT_DISABLE": "1", "TF_IN_AUTOMATION": "1"}


# --------------------------------------------------------------------------- helpers


def _clean(value):
    """python-hcl2 output without parser markers and with bare strings, whatever its version."""
    if isinstance(value, dict):
        return {
            _clean(key): _clean(item)
            for key, item in value.items()
            if not (isinstance(key, str) and key.startswith("__") and key.endswith("__"))
        }
    if isinstance(value, list):
        return [_clean(item) for item in value]
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def parse_tf(path: pathlib.Path) -> dict:
    try:
        from hcl2 import SerializationOptions
    except ImportError:  # python-hcl2 < 6 returns bare strings already
        with path.open() as handle:
            return _clean(hcl2.load(handle))
    options = SerializationOptions(strip_string_quotes=True, with_comments=False)
    with path.open() as handle:
        return _clean(hcl2.load(handle, serialization_options=options))


def load_infra(infra: pathlib.Path = INFRA) -> dict:
    """All infra/*.tf merged: resources[type][name], data, variables, outputs, locals, raw text."""
    config: dict = {"resource": {}, "data": {}, "variable": {}, "output": {}, "locals": {}, "text": {}}
    files = sorted(infra.glob("*.tf"))
    assert files, f"no Terraform files in {infra}"
    for path in files:
        config["text"][path.name] = path.read_text()
        parsed = parse_tf(path)
        for kind in ("resource", "data"):
            for block in parsed.get(kind, []):
                for rtype, named in block.items():
                    for name, body in named.items():
                        bucket = config[kind].setdefault(rtype, {})
                        assert name not in bucket, f"{rtype}.{name} defined twice"
                        bucket[name] = body
        for kind in ("variable", "output"):
            for block in parsed.get(kind, []):
                config[kind].update(block)
        for block in parsed.get("locals", []):
            for name, value in block.items():
                assert name not in config["locals"], f"local.{name} defined twice"
                config["locals"][name] = value
    return config


def entry_points(main_py: pathlib.Path) -> set[str]:
    """The Functions Framework targets main.py defines: it is loaded (as the platform loads it)
    and every module attribute the framework registered as a target is one."""
    import importlib.util

    from functions_framework import _function_registry

    spec = importlib.util.spec_from_file_location("svyaz_main_under_test", main_py)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return {
        name
        for name, value in vars(module).items()
        if callable(value) and name in _function_registry.REGISTRY_MAP
    }


def only(blocks: list | None, what: str) -> dict:
    assert isinstance(blocks, list) and len(blocks) == 1, f"expected exactly one {what} block, got {blocks!r}"
    return blocks[0]


def eval_function_table(expression: str, tmp_path: pathlib.Path):
    """Evaluate an expression over infra/function_table.tf (literals only) with `terraform console`."""
    ok, value = console(["function_table.tf"], expression, tmp_path)
    assert ok, value
    return value


@pytest.fixture(scope="module")
def infra() -> dict:
    return load_infra()


@pytest.fixture(scope="module")
def table(infra) -> dict:
    functions = infra["locals"].get("functions")
    assert isinstance(functions, dict) and functions, "infra must define the function table local.functions"
    return functions


def resources(infra: dict, rtype: str) -> dict:
    return infra["resource"].get(rtype, {})


# --------------------------------------------------------------------------- the helper itself


def test_entry_point_finder_reads_decorated_module_level_functions(tmp_path):
    main = tmp_path / "main.py"
    main.write_text(
        textwrap.dedent(
            """
            import functions_framework
            import functions_framework as ff
            from functions_framework import cloud_event as on_event

            @functions_framework.http
            def collect(request): ...

            @ff.cloud_event
            def handle(event): ...

            def make(name):
                def target(event): ...
                target.__name__ = name
                return on_event(target)

            other = make("other")

            def helper(): ...
            """
        )
    )
    assert entry_points(main) == {"collect", "handle", "other"}


# --------------------------------------------------------------------------- functions


def test_every_target_in_main_py_has_a_function_and_vice_versa(repo_root, table):
    main_py = repo_root / "functions" / "main.py"
    assert main_py.is_file(), f"{main_py} does not exist yet"
    targets = entry_points(main_py)
    assert targets, "no Functions Framework target found in functions/main.py"
    assert set(table) == targets, (
        f"only in main.py: {sorted(targets - set(table))}; only in Terraform: {sorted(set(table) - targets)}"
    )


def test_function_table_is_the_specified_one(table, expected_functions):
    assert set(table) == set(expected_functions)
    for name, expected in expected_functions.items():
        entry = table[name]
        assert entry["public"] is expected["public"], name
        assert set(entry["secrets"]) == expected["secrets"], name
        assert len(entry["secrets"]) == len(set(entry["secrets"])), f"{name} lists a secret twice"
        assert set(entry["publishes_to"]) == expected["publishes_to"], name
        assert set(entry["project_roles"]) == expected["project_roles"], name
        assert re.fullmatch(r"[a-z0-9]{1,12}", entry["short"]), f"{name}: short must fit a service account id"
    shorts = [entry["short"] for entry in table.values()]
    assert len(shorts) == len(set(shorts)), "two functions would share a service account id"


def test_one_function_resource_per_table_entry_built_from_the_one_archive(infra):
    functions = resources(infra, "google_cloudfunctions2_function")
    assert list(functions) == ["function"], "all functions come from the one for_each resource"
    fn = functions["function"]
    assert fn["for_each"] == "${local.functions}"
    build = only(fn.get("build_config"), "build_config")
    assert build["entry_point"] == "${each.key}"
    from svyaz.dev.artifact import PYTHON

    assert build["runtime"] == "python" + PYTHON.replace(".", "")
    storage = only(only(build.get("source"), "source").get("storage_source"), "storage_source")
    assert storage["bucket"] == "${google_storage_bucket.function_source.name}"
    assert storage["object"] == "${google_storage_bucket_object.function_source.name}"

    archive = resources(infra, "google_storage_bucket_object")["function_source"]
    assert archive["source"] == "${var.source_archive}"
    assert "filemd5(var.source_archive)" in archive["name"], "object name must change with the content"
    assert infra["variable"]["source_archive"]["default"] == "../dist/functions.zip"


def test_no_function_runs_as_the_default_compute_service_account(infra, table):
    fn = resources(infra, "google_cloudfunctions2_function")["function"]
    service = only(fn.get("service_config"), "service_config")
    assert service.get("service_account_email") == "${google_service_account.function[each.key].email}"
    accounts = resources(infra, "google_service_account")
    assert accounts["function"]["for_each"] == "${local.functions}"
    assert "each.value.short" in accounts["function"]["account_id"]
    build = only(fn.get("build_config"), "build_config")
    assert build.get("service_account") == "${google_service_account.build.id}"
    for name, text in infra["text"].items():
        assert "compute@developer.gserviceaccount.com" not in text, f"{name} mentions the default compute SA"
        assert "appspot.gserviceaccount.com" not in text, f"{name} mentions the App Engine default SA"


def test_functions_get_the_specified_environment(infra):
    env = infra["locals"]["function_env"]
    assert set(env) == {
        "SVYAZ_ENV",
        "SVYAZ_STORE",
        "SVYAZ_GCP_PROJECT",
        "SVYAZ_EVENTS_TOPIC",
        "SVYAZ_PROFILE_UPDATES_TOPIC",
        "SVYAZ_QR_ALLOWED_HOSTS",
        "SVYAZ_FIRESTORE_DATABASE",
        "SVYAZ_TOUCHPOINTS_TOPIC",
        "SVYAZ_METRICA_COUNTER_ID",
        "SVYAZ_METRICA_GOAL",
    }
    assert env["SVYAZ_ENV"] == "production"
    assert env["SVYAZ_STORE"] == "firestore"
    assert env["SVYAZ_EVENTS_TOPIC"] == "${google_pubsub_topic.events.name}"
    assert env["SVYAZ_PROFILE_UPDATES_TOPIC"] == "${google_pubsub_topic.profile_updates.name}"
    assert "var.qr_allowed_hosts" in env["SVYAZ_QR_ALLOWED_HOSTS"]
    service = only(resources(infra, "google_cloudfunctions2_function")["function"]["service_config"], "sc")
    assert service["environment_variables"] == "${merge(local.function_env, local.runtime_env)}"


def test_every_configured_variable_is_a_setting_of_the_service(infra, table):
    from svyaz.app.config import Settings

    known = {f"SVYAZ_{name.upper()}" for name in Settings.model_fields}
    configured = set(infra["locals"]["function_env"]) | set(infra["locals"]["runtime_settings"])
    configured |= {secret for entry in table.values() for secret in entry["secrets"]}
    assert configured <= known, f"not settings of svyaz.app.config.Settings: {sorted(configured - known)}"


# --------------------------------------------------------------------------- secrets


def test_secrets_are_mounted_from_the_table_and_granted_per_function(
    infra, table, tmp_path, expected_functions
):
    fn = resources(infra, "google_cloudfunctions2_function")["function"]
    dynamic = only(fn["service_config"], "service_config")["dynamic"]
    mounts = [d["secret_environment_variables"] for d in dynamic if "secret_environment_variables" in d]
    mount = only(mounts, "dynamic secret_environment_variables")
    assert mount["for_each"] == "${toset(each.value.secrets)}"
    content = only(mount["content"], "content")
    assert content["key"] == "${secret_environment_variables.value}"
    assert content["secret"].startswith(
        "${google_secret_manager_secret.secret[secret_environment_variables.value]"
    )

    secrets = resources(infra, "google_secret_manager_secret")
    assert list(secrets) == ["secret"]
    assert secrets["secret"]["for_each"] == "${local.secret_ids}"
    assert "local.secret_env_vars" in infra["locals"]["secret_ids"], "one secret per mounted variable"
    for body in secrets.values():
        assert "secret_data" not in body, "secret values must not be managed by Terraform"
    assert "google_secret_manager_secret_version" not in infra["resource"], "values are added with gcloud"

    accessors = resources(infra, "google_secret_manager_secret_iam_member")
    assert list(accessors) == ["accessor"], "every secret grant must come from local.secret_grants"
    accessor = accessors["accessor"]
    assert accessor["for_each"] == "${local.secret_grants}"
    assert accessor["role"] == "roles/secretmanager.secretAccessor"
    assert accessor["secret_id"] == "${google_secret_manager_secret.secret[each.value.secret].id}"
    assert (
        accessor["member"] == "serviceAccount:${google_service_account.function[each.value.function].email}"
    )
    for rtype in ("google_secret_manager_secret_iam_binding", "google_secret_manager_secret_iam_policy"):
        assert rtype not in infra["resource"], f"{rtype} would grant outside the table"

    mounted = {(name, secret) for name, entry in table.items() for secret in entry["secrets"]}
    expected = {(name, secret) for name, entry in expected_functions.items() for secret in entry["secrets"]}
    assert mounted == expected
    if TERRAFORM:  # evaluate the grant expression itself
        grants = eval_function_table("local.secret_grants", tmp_path)
        assert {(g["function"], g["secret"]) for g in grants.values()} == mounted
        assert set(eval_function_table("local.secret_env_vars", tmp_path)) == {s for _, s in mounted}


def test_topic_publish_and_firestore_grants_follow_the_table(infra, table, tmp_path):
    publisher = resources(infra, "google_pubsub_topic_iam_member")["publisher"]
    assert publisher["for_each"] == "${local.publisher_grants}"
    assert publisher["role"] == "roles/pubsub.publisher"
    project_roles = resources(infra, "google_project_iam_member")["function"]
    assert project_roles["for_each"] == "${local.project_role_grants}"
    condition = only(project_roles.get("condition"), "condition")
    assert "google_firestore_database.main.name" in condition["expression"]
    for rtype in ("google_project_iam_binding", "google_project_iam_policy"):
        assert rtype not in infra["resource"]
    if TERRAFORM:
        published = eval_function_table("local.publisher_grants", tmp_path)
        assert {(g["function"], g["topic"]) for g in published.values()} == {
            (name, topic) for name, entry in table.items() for topic in entry["publishes_to"]
        }
        roles = eval_function_table("local.project_role_grants", tmp_path)
        assert {(g["function"], g["role"]) for g in roles.values()} == {
            (name, role) for name, entry in table.items() for role in entry["project_roles"]
        }


def test_function_table_file_holds_literals_only():
    text = (INFRA / "function_table.tf").read_text()
    code = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
    reference = re.search(r"\b(var|data|google_[a-z0-9_]+)\.", code)
    assert reference is None, "function_table.tf must hold literals only (terraform console evaluates it)"


# --------------------------------------------------------------------------- invokers


def test_public_functions_are_public_and_process_event_only_for_the_push_account(infra, table):
    invoker = resources(infra, "google_cloud_run_service_iam_member")["invoker"]
    assert invoker["for_each"] == "${local.functions}"
    assert invoker["role"] == "roles/run.invoker"
    assert invoker["service"] == "${google_cloudfunctions2_function.function[each.key].name}"
    member = invoker["member"].replace(" ", "")
    assert (
        member
        == '${each.value.public?"allUsers":"serviceAccount:${google_service_account.push_invoker.email}"}'
    )
    from svyaz.entrypoints.registry import BY_TARGET

    assert table["process_event"]["public"] is False
    # Only Pub/Sub push reaches the event-triggered functions (process_event, export_conversions).
    for name, entry in table.items():
        assert entry["public"] is (BY_TARGET[name].trigger == "http"), name


# --------------------------------------------------------------------------- Pub/Sub


def test_every_subscription_of_the_events_topic_dead_letters_and_backs_off(infra):
    subscriptions = resources(infra, "google_pubsub_subscription")
    of_events = {
        name: body
        for name, body in subscriptions.items()
        if re.fullmatch(r"\$\{google_pubsub_topic\.events\.(id|name)\}", body["topic"])
    }
    assert of_events, "no subscription delivers the events topic"
    for name, body in of_events.items():
        dead_letter = only(body.get("dead_letter_policy"), f"{name} dead_letter_policy")
        assert dead_letter["dead_letter_topic"] == "${google_pubsub_topic.events_dead_letter.id}"
        assert dead_letter["max_delivery_attempts"] == 10
        retry = only(body.get("retry_policy"), f"{name} retry_policy")
        assert (retry["minimum_backoff"], retry["maximum_backoff"]) == ("10s", "600s")
        assert body["ack_deadline_seconds"] == 60
        assert only(body.get("expiration_policy"), "expiration_policy")["ttl"] == ""

    push = of_events["events_process_event"]
    push_config = only(push.get("push_config"), "push_config")
    assert push_config["push_endpoint"] == "${local.process_event_url}"
    url = infra["locals"]["process_event_url"]
    assert url == '${google_cloudfunctions2_function.function["process_event"].service_config[0].uri}'
    oidc = only(push_config.get("oidc_token"), "oidc_token")
    assert oidc["service_account_email"] == "${google_service_account.push_invoker.email}"
    assert oidc["audience"] == "${local.process_event_url}"


def test_dead_letters_are_kept_and_the_pubsub_agent_may_move_them(infra):
    topics = resources(infra, "google_pubsub_topic")
    assert {"events", "profile_updates", "events_dead_letter"} <= set(topics)
    assert topics["events"]["name"] == "${var.name_prefix}-events"
    assert topics["profile_updates"]["name"] == "${var.name_prefix}-profile-updates"
    assert topics["events_dead_letter"]["name"] == "${var.name_prefix}-events-dead-letter"
    assert infra["variable"]["name_prefix"]["default"] == "svyaz"

    pull = [
        body
        for body in resources(infra, "google_pubsub_subscription").values()
        if body["topic"] == "${google_pubsub_topic.events_dead_letter.id}"
    ]
    keeper = only(pull, "dead-letter subscription")
    assert "push_config" not in keeper
    assert keeper["message_retention_duration"] == "604800s"
    assert only(keeper.get("expiration_policy"), "expiration_policy")["ttl"] == ""

    agent = infra["locals"]["pubsub_service_agent"]
    assert agent == "service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
    publisher = resources(infra, "google_pubsub_topic_iam_member")["dead_letter_publisher"]
    assert publisher["topic"] == "${google_pubsub_topic.events_dead_letter.id}"
    assert publisher["role"] == "roles/pubsub.publisher"
    assert publisher["member"] == "serviceAccount:${local.pubsub_service_agent}"
    subscriber = resources(infra, "google_pubsub_subscription_iam_member")["dead_letter_subscriber"]
    assert subscriber["subscription"] == "${google_pubsub_subscription.events_process_event.id}"
    assert subscriber["role"] == "roles/pubsub.subscriber"
    assert subscriber["member"] == "serviceAccount:${local.pubsub_service_agent}"


# --------------------------------------------------------------------------- Firestore


def test_firestore_database_is_protected(infra):
    database = resources(infra, "google_firestore_database")["main"]
    assert database["type"] == "FIRESTORE_NATIVE"
    assert database["delete_protection_state"] == "DELETE_PROTECTION_ENABLED"
    assert database["point_in_time_recovery_enablement"] == "POINT_IN_TIME_RECOVERY_ENABLED"
    assert database["location_id"] == "${var.firestore_location}"
    description = infra["variable"]["firestore_location"]["description"]
    assert "152-FZ" in description and "Russia" in description
    assert "default" not in infra["variable"]["firestore_location"], (
        "the location must be a deliberate choice"
    )


def test_idempotency_records_expire_by_ttl(infra):
    fields = resources(infra, "google_firestore_field")
    ttl = [
        body
        for body in fields.values()
        if body.get("collection") == "processed_events" and body.get("field") == "expire_at"
    ]
    assert "ttl_config" in only(ttl, "processed_events.expire_at field")


def test_erased_touchpoint_stubs_expire_by_ttl(infra):
    fields = resources(infra, "google_firestore_field")
    ttl = [
        body
        for body in fields.values()
        if body.get("collection") == "touchpoints" and body.get("field") == "expire_at"
    ]
    field = only(ttl, "touchpoints.expire_at field")
    assert "ttl_config" in field and "index_config" in field  # never queried: no index either


def test_never_queried_fields_are_exempt_from_indexing(infra):
    exempt = resources(infra, "google_firestore_field")["unindexed"]
    assert exempt["for_each"] == "${local.firestore_unindexed_fields}"
    assert exempt["index_config"] == [{}], "an empty index_config disables the single-field indexes"
    fields = {(f["collection"], f["field"]) for f in infra["locals"]["firestore_unindexed_fields"].values()}
    # Fields the stores filter or order on keep their indexes (shared/svyaz/store/firestore.py).
    queried = {
        ("identifiers", "profile_id"),
        ("touchpoints", "profile_id"),
        ("touchpoints", "timestamp"),
        ("touchpoints", "type"),
        ("profiles", "merged_into"),
        ("processed_events", "profile_ids"),  # erasure rewrites the records naming the family
        ("audit", "profile_ids"),
        ("splits", "profile_id"),
    }
    assert not fields & queried, "queried fields need their automatic index"
    # Free-form maps and fields rewritten by every page view are exempt (cost, hotspots).
    assert {
        ("profiles", "traits"),
        ("profiles", "identifiers"),
        ("profiles", "last_seen_ms"),
        ("touchpoints", "properties"),
        ("touchpoints", "written_ms"),
        ("processed_events", "outcome"),
        ("processed_events", "jobs"),
    } <= fields


def test_the_queries_have_their_composite_indexes(infra):
    indexes = [
        b for b in resources(infra, "google_firestore_index").values() if b["collection"] == "touchpoints"
    ]
    assert all(index["query_scope"] == "COLLECTION" for index in indexes)
    assert sorted([(f["field_path"], f["order"]) for f in index["fields"]] for index in indexes) == [
        [("profile_id", "ASCENDING"), ("timestamp", "DESCENDING")],  # touch history of a profile
        [("type", "ASCENDING"), ("timestamp", "ASCENDING")],  # orders of a period (attribution report)
    ]


# --------------------------------------------------------------------------- project, variables, outputs


def test_required_services_are_enabled(infra):
    services = set(re.findall(r"[a-z]+\.googleapis\.com", str(infra["locals"]["services"])))
    required = {"cloudfunctions", "run", "cloudbuild", "artifactregistry", "pubsub", "firestore"}
    required |= {"secretmanager", "eventarc", "storage"}
    assert {f"{api}.googleapis.com" for api in required} <= services
    enabled = resources(infra, "google_project_service")["enabled"]
    assert enabled["for_each"] == "${local.services}"
    assert enabled["disable_on_destroy"] is False


def test_provider_is_pinned():
    terraform = only(parse_tf(INFRA / "versions.tf")["terraform"], "terraform")
    google = only(terraform["required_providers"], "required_providers")["google"]
    assert google["source"] == "hashicorp/google"
    assert re.fullmatch(r"~> ?\d+\.\d+(\.\d+)?", google["version"]), google["version"]


def test_variables_are_described_and_constrained(infra):
    for name, variable in infra["variable"].items():
        assert variable.get("description", "").strip(), f"variable {name} needs a description"
        assert "type" in variable, f"variable {name} needs a type"
    for name in ("project_id", "region", "name_prefix", "firestore_location", "firestore_database"):
        assert infra["variable"][name].get("validation"), f"variable {name} needs a validation block"
    for name in ("source_archive", "qr_allowed_hosts", "max_instance_count", "function_memory", "labels"):
        assert infra["variable"][name].get("validation"), f"variable {name} needs a validation block"


def test_outputs_expose_every_public_url(infra, table):
    outputs = infra["output"]
    for name, output in outputs.items():
        assert output.get("description"), f"output {name} needs a description"
    public = outputs["public_urls"]["value"].replace(" ", "")
    assert "google_cloudfunctions2_function.function" in public and "service_config[0].uri" in public
    assert "local.functions[name].public" in public
    text = json.dumps({k: v["value"] for k, v in outputs.items()})
    for name, entry in table.items():
        if entry["public"]:
            assert f'function[\\"{name}\\"]' in text, f"no named output for the {name} URL"


# --------------------------------------------------------------------------- formatting


def test_terraform_is_formatted():
    if TERRAFORM is None:
        pytest.skip("terraform is not on PATH")
    result = subprocess.run(
        [TERRAFORM, "fmt", "-check", "-recursive", "-diff", str(INFRA)],
        env=TF_ENV,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, f"run `terraform fmt -recursive infra`:\n{result.stdout}{result.stderr}"


# --------------------------------------------------------------------------- one Python version


def test_one_python_version_everywhere(repo_root):
    """The functions' runtime, the lock, packaging, CI and the tests all use one Python version."""
    import sys
    import tomllib

    from svyaz.dev.artifact import PYTHON

    major, minor = map(int, PYTHON.split("."))
    assert sys.version_info[:2] == (major, minor), "the tests run on another Python than the functions"
    project = tomllib.loads((repo_root / "pyproject.toml").read_text())
    assert project["project"]["requires-python"] == f">={PYTHON},<{major}.{minor + 1}"
    assert project["tool"]["ruff"]["target-version"] == f"py{major}{minor}"
    assert (repo_root / ".python-version").read_text().strip() == PYTHON
    assert f"sys.version_info[:2] == ({major}, {minor})" in (repo_root / "cloudbuild.yaml").read_text()
    assert f"for Python {PYTHON}." in (repo_root / "functions" / "requirements.lock").read_text()
    assert f'runtime         = "python{major}{minor}"' in (INFRA / "functions.tf").read_text()


# --------------------------------------------------------------------------- offline validation


def console(files: list[str], expression: str, tmp_path: pathlib.Path, **variables: str):
    """Evaluate an expression over some infra files (variables and literals only) with `terraform
    console`, the variables given as -var; returns (ok, value or error text)."""
    for name in files:
        shutil.copy(INFRA / name, tmp_path / name)
    args = [TERRAFORM, "console"] + [f"-var={name}={value}" for name, value in variables.items()]
    result = subprocess.run(
        args,
        input=f"jsonencode({expression})\n",
        cwd=tmp_path,
        env=TF_ENV,
        capture_output=True,
        text=True,
        timeout=60,
    )
    text = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout + result.stderr)
    # A failed validation is reported as an error, yet the console may go on and exit 0.
    if result.returncode != 0 or "Error:" in text:
        return False, text
    return True, json.loads(json.loads(result.stdout.strip().splitlines()[-1]))


REQUIRED = {"project_id": "shop-svyaz-prod", "firestore_location": "eur3"}
needs_terraform = pytest.mark.skipif(TERRAFORM is None, reason="terraform is not on PATH")


@needs_terraform
def test_an_empty_qr_host_list_is_refused_at_plan(tmp_path):
    ok, error = console(["variables.tf"], "var.qr_allowed_hosts", tmp_path, **REQUIRED, qr_allowed_hosts="[]")
    assert not ok and "qr_allowed_hosts must list at least one host" in " ".join(error.split())
    ok, hosts = console(
        ["variables.tf"], "var.qr_allowed_hosts", tmp_path, **REQUIRED, qr_allowed_hosts='["shop.example.ru"]'
    )
    assert ok and hosts == ["shop.example.ru"]
    assert "default" not in parse_tf(INFRA / "variables.tf")["variable"][0].get("qr_allowed_hosts", {})


def test_cloud_build_requires_the_qr_hosts(repo_root):
    text = (repo_root / "cloudbuild.yaml").read_text()
    assert "_QR_ALLOWED_HOSTS: ''" in text and 'if [ -z "${_QR_ALLOWED_HOSTS}" ]' in text
    assert "-var='lb_domains=${_LB_DOMAINS}'" in text


@needs_terraform
def test_runtime_settings_become_the_functions_environment(tmp_path, monkeypatch):
    from svyaz.app.config import Settings

    ok, defaults = console(["settings.tf"], "local.runtime_env", tmp_path)
    assert ok and defaults == {
        "SVYAZ_CALLTRACKING_TIMEZONE": "Europe/Moscow",
        "SVYAZ_CALLTRACKING_VENDOR": "generic",
        "SVYAZ_JOURNAL_TIMEZONE": "Europe/Moscow",
        "SVYAZ_QR_PUBLISH_DEADLINE_SECONDS": "2",
    }, "empty settings must be left out, so the service keeps its defaults"
    ok, env = console(
        ["settings.tf"],
        "local.runtime_env",
        tmp_path,
        policy_toml="[kinds.email]\nlimit = 3\n",
        whatsapp_session_pattern=r"order\s+(\d{6,20})",
        cookie_domain="shop.example.ru",
        calltracking_field_map='{caller = "caller_phone"}',
        calltracking_number_sources='{"74951112233" = {source = "yandex", medium = "cpc"}}',
        calltracking_timezone="Asia/Yekaterinburg",
    )
    assert ok, env
    # What Terraform deploys is what the service reads: the same variables, parsed.
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert settings.identity_policy.kind("email").limit == 3
    assert settings.whatsapp_session_pattern == r"order\s+(\d{6,20})"
    assert settings.cookie_domain == "shop.example.ru"
    assert json.loads(env["SVYAZ_CALLTRACKING_FIELD_MAP"]) == {"caller": "caller_phone"}
    assert json.loads(env["SVYAZ_CALLTRACKING_NUMBER_SOURCES"])["74951112233"]["source"] == "yandex"
    assert settings.calltracking_timezone == "Asia/Yekaterinburg"
    known = {f"SVYAZ_{name.upper()}" for name in Settings.model_fields}
    assert set(env) <= known


@needs_terraform
@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("cookie_domain", "https://shop.example.ru/", "cookie_domain must be a lowercase domain"),
        ("whatsapp_session_pattern", "no group here", "must have a capturing group"),
        ("calltracking_timezone", "Moscow time", "IANA time zone"),
        ("calltracking_vendor", "calltuch", "generic, calltouch or uis"),
        ("calltracking_number_sources", '{"+7 495" = {medium = "cpc"}}', "phone numbers"),
        ("qr_publish_deadline_seconds", "30", "between 0 and 10"),
    ],
)
def test_a_wrong_runtime_setting_is_refused_at_plan(variable, value, message, tmp_path):
    ok, error = console(["settings.tf"], "local.runtime_env", tmp_path, **{variable: value})
    assert not ok and message in " ".join(error.split())


# --------------------------------------------------------------------------- the brand's domain


def test_the_load_balancer_routes_are_the_registry_routes(tmp_path):
    from svyaz.dev.artifact import lb_routes_tf
    from svyaz.entrypoints import registry

    assert (INFRA / "lb_routes.tf").read_text() == lb_routes_tf(), "run `svyaz package --routes`"
    if TERRAFORM:
        ok, routes = console(["lb_routes.tf"], "local.lb_routes", tmp_path)
        assert ok and routes == registry.routes()
    wanted = {"/qr", "/svyaz.js", "/collect", "/v1", "/profiles", "/webhooks/crm", "/webhooks/calltracking"}
    assert wanted <= set(registry.routes())


def test_the_load_balancer_is_off_by_default_and_serves_every_route_when_on(infra):
    variable = infra["variable"]["lb_domains"]
    assert variable["default"] == [] and variable.get("validation")
    assert infra["locals"]["lb_enabled"] == "${length(var.lb_domains) > 0}"
    assert "local.lb_routes" in infra["locals"]["lb_functions"]

    neg = resources(infra, "google_compute_region_network_endpoint_group")["function"]
    assert neg["for_each"] == "${local.lb_functions}"
    assert neg["network_endpoint_type"] == "SERVERLESS"
    assert only(neg["cloud_function"], "cloud_function")["function"] == (
        "${google_cloudfunctions2_function.function[each.key].name}"
    )
    backend = resources(infra, "google_compute_backend_service")["function"]
    assert backend["for_each"] == "${local.lb_functions}"
    assert backend["load_balancing_scheme"] == "EXTERNAL_MANAGED"
    assert only(backend["backend"], "backend")["group"] == (
        "${google_compute_region_network_endpoint_group.function[each.key].id}"
    )

    url_map = resources(infra, "google_compute_url_map")["lb"]
    matcher = only(url_map["path_matcher"], "path_matcher")
    rule = only([d["path_rule"] for d in matcher["dynamic"] if "path_rule" in d], "dynamic path_rule")
    assert rule["for_each"] == "${local.lb_routes}"
    content = only(rule["content"], "content")
    assert content["paths"] == ["${path_rule.key}", "${path_rule.key}/*"]
    function = "google_compute_backend_service.function[path_rule.value].id"
    journal = (
        'path_rule.key == "/journal" && local.journal_iap ? one(google_compute_backend_service.journal[*].id)'
    )
    assert content["service"] == "${" + journal + " : " + function + "}"
    assert only(url_map["host_rule"], "host_rule")["hosts"] == "${var.lb_domains}"

    certificate = resources(infra, "google_compute_managed_ssl_certificate")["lb"]
    assert only(certificate["managed"], "managed")["domains"] == "${var.lb_domains}"
    proxy = resources(infra, "google_compute_target_https_proxy")["lb"]
    assert proxy["ssl_certificates"] == ["${google_compute_managed_ssl_certificate.lb[0].id}"]
    rules = resources(infra, "google_compute_global_forwarding_rule")
    assert (
        rules["https"]["port_range"] == "443"
        and rules["https"]["load_balancing_scheme"] == "EXTERNAL_MANAGED"
    )
    assert rules["http"]["port_range"] == "80"
    redirect = only(
        resources(infra, "google_compute_url_map")["http_redirect"]["default_url_redirect"], "redirect"
    )
    assert redirect["https_redirect"] is True
    # Every single resource of the load balancer exists only when a domain is given.
    for rtype in (
        "google_compute_global_address",
        "google_compute_url_map",
        "google_compute_managed_ssl_certificate",
        "google_compute_target_https_proxy",
        "google_compute_target_http_proxy",
        "google_compute_global_forwarding_rule",
    ):
        for name, body in resources(infra, rtype).items():
            assert body.get("count") == "${local.lb_enabled ? 1 : 0}", f"{rtype}.{name}"
    assert "compute.googleapis.com" in str(infra["locals"]["services"])


@needs_terraform
def test_a_wrong_domain_is_refused_at_plan(tmp_path):
    ok, error = console(
        ["variables.tf"],
        "var.lb_domains",
        tmp_path,
        **REQUIRED,
        qr_allowed_hosts='["shop.example.ru"]',
        lb_domains='["https://shop.example.ru"]',
    )
    assert not ok and "lb_domains entry must be a lowercase host name" in " ".join(error.split())


def test_the_journal_can_sit_behind_identity_aware_proxy(infra):
    """IAP on /journal only (its own backend on the profiles NEG), access per member, and the
    audience handed to the function so it verifies IAP's signed header."""
    backend = resources(infra, "google_compute_backend_service")["journal"]
    assert backend["count"] == "${local.journal_iap ? 1 : 0}" and backend["iap"] == [{"enabled": True}]
    assert backend["backend"] == [
        {"group": '${google_compute_region_network_endpoint_group.function["profiles"].id}'}
    ]
    member = resources(infra, "google_iap_web_backend_service_iam_member")["journal"]
    assert member["role"] == "roles/iap.httpsResourceAccessor"
    settings = infra["locals"]["runtime_settings"]
    assert settings["SVYAZ_JOURNAL_IAP_AUDIENCE"] == "${var.journal_iap_audience}"
    assert settings["SVYAZ_JOURNAL_AUTH"] == '${var.journal_iap_audience != "" ? "iap" : ""}'
    assert infra["variable"]["journal_iap_members"]["default"] == []


def test_request_logs_of_urls_holding_a_secret_are_never_stored(infra, tmp_path):
    """amoCRM's webhook URL holds its secret (amoCRM signs nothing): the platform's request logs
    (Cloud Run's and the load balancer's) of every secret-in-path function are excluded."""
    from svyaz.entrypoints.registry import FUNCTIONS

    exclusion = resources(infra, "google_logging_project_exclusion")["secret_urls"]
    assert exclusion["project"] == "${var.project_id}" and not exclusion.get("disabled")
    assert exclusion["filter"] == "${local.secret_url_filter}"
    prefixes = [p for f in FUNCTIONS if f.secret_in_path for p in f.paths]
    assert set(infra["locals"]["secret_url_prefixes"]) == set(prefixes) and prefixes
    assert "amocrm_webhook" in infra["locals"]["secret_url_functions"]
    if TERRAFORM:  # the filter as Terraform builds it (the locals alone: no provider here)
        text = (INFRA / "logging.tf").read_text()
        (tmp_path / "locals.tf").write_text(text[text.index("locals {") : text.index("resource ")])
        ok, value = console(["variables.tf"], "local.secret_url_filter", tmp_path, **REQUIRED)
        assert ok, value
        assert value == (
            '(log_id("run.googleapis.com/requests") OR log_id("requests")) AND ('
            'httpRequest.requestUrl:"/webhooks/crm/amocrm/" OR '
            'httpRequest.requestUrl:"/webhooks/crm/amocrm?" OR '
            'httpRequest.requestUrl:"/webhooks/crm/bitrix24/" OR '
            'httpRequest.requestUrl:"/webhooks/crm/bitrix24?" OR '
            'resource.labels.service_name="svyaz-amocrm-webhook")'
        )
