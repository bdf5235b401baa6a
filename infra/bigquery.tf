# The warehouse: BigQuery tables fed by Pub/Sub BigQuery subscriptions (no code between the pipeline and
# BigQuery), the attribution view, and the daily deletion of erased customers (docs/warehouse.md).
#
#   touchpoints      <- the touchpoints topic: one row per applied event, published by process_event
#   profile_updates  <- the profile-updates topic: outcomes (merges) and erasures
#   attribution_orders (view) = `svyaz report attribution`'s credit per order, from those two tables
#
# Schemas and SQL live in infra/bigquery/; tests/unit/warehouse checks the messages against the schemas
# and runs the same SQL on DuckDB against `svyaz report attribution`.

variable "bigquery_location" {
  description = <<-EOT
    Location of the BigQuery dataset (EU, US or a region such as europe-west3). It cannot be changed
    after creation. The tables hold pseudonymous histories (profile ids, ad sources, order amounts; no
    identifier values), still personal data: read firestore_location's description (152-FZ) first.
  EOT
  type        = string
  default     = "EU"

  validation {
    condition     = can(regex("^(EU|US|[a-z]+-[a-z]+[0-9]+)$", var.bigquery_location))
    error_message = "bigquery_location must be EU, US or a region such as europe-west3."
  }
}

resource "google_project_service" "warehouse" {
  for_each = toset(["bigquery.googleapis.com", "bigquerydatatransfer.googleapis.com"])

  project                    = var.project_id
  service                    = each.value
  disable_on_destroy         = false
  disable_dependent_services = false
}

resource "google_pubsub_topic" "touchpoints" {
  #checkov:skip=CKV_GCP_83:Google-managed encryption as for the other topics (see pubsub.tf).
  name                       = "${var.name_prefix}-touchpoints"
  message_retention_duration = "604800s"

  depends_on = [google_project_service.enabled]
}

resource "google_bigquery_dataset" "warehouse" {
  dataset_id  = replace(var.name_prefix, "-", "_")
  location    = var.bigquery_location
  description = "svyaz touch history and profile updates (Pub/Sub BigQuery subscriptions)"

  delete_contents_on_destroy = false
  max_time_travel_hours      = "48" # the minimum: deleted rows of erased customers go sooner

  depends_on = [google_project_service.warehouse]
}

locals {
  # table -> schema file, partitioning column, clustering, the topic that feeds it
  warehouse_tables = {
    touchpoints = {
      schema     = "touchpoints.json"
      partition  = "occurred_at"
      clustering = ["type", "profile_id"]
      topic      = google_pubsub_topic.touchpoints.id
    }
    profile_updates = {
      schema     = "profile_updates.json"
      partition  = "publish_time"
      clustering = ["status", "profile_id"]
      topic      = google_pubsub_topic.profile_updates.id
    }
  }

  # What ${touchpoints} / ${profile_updates} / ${attribution_orders} stand for in infra/bigquery/*.sql.
  warehouse_refs = {
    touchpoints        = "`${var.project_id}.${google_bigquery_dataset.warehouse.dataset_id}.touchpoints`"
    profile_updates    = "`${var.project_id}.${google_bigquery_dataset.warehouse.dataset_id}.profile_updates`"
    attribution_orders = "`${var.project_id}.${google_bigquery_dataset.warehouse.dataset_id}.attribution_orders`"
  }
}

resource "google_bigquery_table" "warehouse" {
  for_each = local.warehouse_tables

  dataset_id = google_bigquery_dataset.warehouse.dataset_id
  table_id   = each.key
  schema     = file("${path.module}/bigquery/${each.value.schema}")
  clustering = each.value.clustering

  time_partitioning {
    type  = "DAY"
    field = each.value.partition
  }

  deletion_protection = true
}

resource "google_bigquery_table" "attribution_orders" {
  dataset_id  = google_bigquery_dataset.warehouse.dataset_id
  table_id    = "attribution_orders"
  description = "One row per order with the ad sources credited (first / last touch), as svyaz report attribution"

  view {
    query          = templatefile("${path.module}/bigquery/attribution_orders.sql", local.warehouse_refs)
    use_legacy_sql = false
  }

  deletion_protection = false
  depends_on          = [google_bigquery_table.warehouse]
}

# Pub/Sub writes with its service agent: data editor on this dataset only.
resource "google_bigquery_dataset_iam_member" "pubsub_writer" {
  dataset_id = google_bigquery_dataset.warehouse.dataset_id
  role       = "roles/bigquery.dataEditor"
  member     = "serviceAccount:${local.pubsub_service_agent}"
}

# Rows BigQuery refuses (a message that no longer fits the table) wait here 7 days instead of blocking.
resource "google_pubsub_topic" "warehouse_dead_letter" {
  #checkov:skip=CKV_GCP_83:Google-managed encryption as for the other topics (see pubsub.tf).
  name                       = "${var.name_prefix}-warehouse-dead-letter"
  message_retention_duration = "604800s"

  depends_on = [google_project_service.enabled]
}

resource "google_pubsub_subscription" "warehouse_dead_letter" {
  name                       = "${var.name_prefix}-warehouse-dead-letter"
  topic                      = google_pubsub_topic.warehouse_dead_letter.id
  ack_deadline_seconds       = 60
  message_retention_duration = "604800s"

  expiration_policy {
    ttl = ""
  }
}

resource "google_pubsub_subscription" "warehouse" {
  for_each = local.warehouse_tables

  name  = "${var.name_prefix}-${replace(each.key, "_", "-")}-bigquery"
  topic = each.value.topic

  bigquery_config {
    table               = "${var.project_id}.${google_bigquery_dataset.warehouse.dataset_id}.${each.key}"
    use_table_schema    = true # messages are JSON objects with the table's columns
    write_metadata      = true # subscription_name, message_id, publish_time, attributes
    drop_unknown_fields = true # a new message field never stalls the subscription
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.warehouse_dead_letter.id
    max_delivery_attempts = 10
  }

  expiration_policy {
    ttl = ""
  }

  depends_on = [google_bigquery_table.warehouse, google_bigquery_dataset_iam_member.pubsub_writer]
}

resource "google_pubsub_topic_iam_member" "warehouse_dead_letter_publisher" {
  topic  = google_pubsub_topic.warehouse_dead_letter.id
  role   = "roles/pubsub.publisher"
  member = "serviceAccount:${local.pubsub_service_agent}"
}

resource "google_pubsub_subscription_iam_member" "warehouse_dead_letter_subscriber" {
  for_each = local.warehouse_tables

  subscription = google_pubsub_subscription.warehouse[each.key].id
  role         = "roles/pubsub.subscriber"
  member       = "serviceAccount:${local.pubsub_service_agent}"
}

# Erasure: a scheduled query deletes every row of the customers erased so far (the erasure rows of
# profile_updates list their profile ids). The views leave erased customers out at once.
resource "google_service_account" "warehouse_eraser" {
  account_id   = "${var.name_prefix}-bq-eraser"
  display_name = "svyaz warehouse erasure"
  description  = "Runs the daily scheduled query that deletes erased customers' rows"
}

resource "google_bigquery_dataset_iam_member" "eraser" {
  dataset_id = google_bigquery_dataset.warehouse.dataset_id
  role       = "roles/bigquery.dataEditor"
  member     = "serviceAccount:${google_service_account.warehouse_eraser.email}"
}

resource "google_project_iam_member" "eraser_jobs" {
  project = var.project_id
  role    = "roles/bigquery.jobUser"
  member  = "serviceAccount:${google_service_account.warehouse_eraser.email}"
}

resource "google_service_account_iam_member" "eraser_token" {
  service_account_id = google_service_account.warehouse_eraser.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-bigquerydatatransfer.iam.gserviceaccount.com"
}

resource "google_bigquery_data_transfer_config" "erase" {
  display_name         = "${var.name_prefix} erase customers"
  location             = var.bigquery_location
  data_source_id       = "scheduled_query"
  schedule             = "every 24 hours"
  service_account_name = google_service_account.warehouse_eraser.email

  params = {
    query = templatefile("${path.module}/bigquery/erase.sql", local.warehouse_refs)
  }

  depends_on = [google_bigquery_dataset_iam_member.eraser, google_project_iam_member.eraser_jobs]
}

output "warehouse" {
  description = "BigQuery dataset, tables and the attribution view."
  value = {
    dataset = google_bigquery_dataset.warehouse.dataset_id
    tables  = { for name, table in google_bigquery_table.warehouse : name => table.table_id }
    view    = google_bigquery_table.attribution_orders.table_id
  }
}
