"""Static checks of infra/bigquery.tf and infra/export.tf: the BigQuery subscriptions read the topics
the pipeline publishes to and write the tables whose schemas the message tests use; the view and the
erasure query are the SQL files the DuckDB test runs; the scheduler reaches the export function only
through the authenticated push."""

from __future__ import annotations

import json
import re

import pytest

from tests.infra.test_terraform import INFRA, load_infra, only, resources


@pytest.fixture(scope="module")
def infra() -> dict:
    return load_infra()


METADATA = {"subscription_name", "message_id", "publish_time", "attributes"}


def test_each_table_is_written_by_a_bigquery_subscription_of_its_topic(infra):
    tables = infra["locals"]["warehouse_tables"]
    assert tables["touchpoints"]["topic"] == "${google_pubsub_topic.touchpoints.id}"
    assert tables["profile_updates"]["topic"] == "${google_pubsub_topic.profile_updates.id}"
    table = resources(infra, "google_bigquery_table")["warehouse"]
    assert table["for_each"] == "${local.warehouse_tables}"
    assert table["schema"] == '${file("${path.module}/bigquery/${each.value.schema}")}'
    assert table["deletion_protection"] is True
    subscription = resources(infra, "google_pubsub_subscription")["warehouse"]
    assert subscription["for_each"] == "${local.warehouse_tables}"
    assert subscription["topic"] == "${each.value.topic}"
    config = only(subscription["bigquery_config"], "bigquery_config")
    assert config["use_table_schema"] is True and config["write_metadata"] is True
    assert config["table"].endswith(".${each.key}")
    for name, entry in tables.items():
        columns = {c["name"] for c in json.loads((INFRA / "bigquery" / entry["schema"]).read_text())}
        assert METADATA <= columns, f"{name}: write_metadata needs {sorted(METADATA - columns)}"
        assert entry["partition"] in columns


def test_process_event_publishes_to_the_topic_the_warehouse_reads(infra):
    env = infra["locals"]["function_env"]
    assert env["SVYAZ_TOUCHPOINTS_TOPIC"] == "${google_pubsub_topic.touchpoints.name}"
    assert infra["locals"]["topics"]["touchpoints"] == "${google_pubsub_topic.touchpoints}"
    assert "touchpoints" in infra["locals"]["functions"]["process_event"]["publishes_to"]


def test_the_view_and_the_erasure_are_the_tested_sql_files(infra):
    refs = infra["locals"]["warehouse_refs"]
    view = resources(infra, "google_bigquery_table")["attribution_orders"]
    query = only(view["view"], "view")["query"]
    expected = '${templatefile("${path.module}/bigquery/attribution_orders.sql",local.warehouse_refs)}'
    assert query.replace(" ", "") == expected
    erase = resources(infra, "google_bigquery_data_transfer_config")["erase"]
    assert erase["data_source_id"] == "scheduled_query" and erase["schedule"] == "every 24 hours"
    assert "bigquery/erase.sql" in erase["params"]["query"]
    for name in ("attribution_orders.sql", "erase.sql", "attribution_report.sql"):
        placeholders = set(re.findall(r"\$\{(\w+)\}", (INFRA / "bigquery" / name).read_text()))
        assert placeholders <= set(refs), f"{name}: {sorted(placeholders - set(refs))} not in warehouse_refs"


def test_the_scheduler_reaches_the_export_only_through_the_authenticated_push(infra):
    job = resources(infra, "google_cloud_scheduler_job")["export_conversions"]
    target = only(job["pubsub_target"], "pubsub_target")
    assert target["topic_name"] == "${google_pubsub_topic.conversions_schedule.id}"
    push = resources(infra, "google_pubsub_subscription")["conversions_schedule_export"]
    assert push["topic"] == "${google_pubsub_topic.conversions_schedule.id}"
    config = only(push["push_config"], "push_config")
    assert config["push_endpoint"] == "${local.export_conversions_url}"
    oidc = only(config["oidc_token"], "oidc_token")
    assert oidc["service_account_email"] == "${google_service_account.push_invoker.email}"
    assert infra["locals"]["functions"]["export_conversions"]["public"] is False
    assert "SVYAZ_METRICA_OAUTH_TOKEN" in infra["locals"]["functions"]["export_conversions"]["secrets"]
