# The daily export of offline conversions to Yandex Metrica (docs/conversions.md).
#
# Cloud Scheduler publishes {"target": "metrica"} on the conversions-schedule topic every day; Pub/Sub
# pushes it (OIDC token of the push invoker, like process_event) to the export_conversions function,
# which uploads the conversions of the last SVYAZ_EXPORT_LOOKBACK_DAYS days that no run exported yet
# (the ledger in Firestore: conversion_exports/*). A failed upload fails the delivery, so Pub/Sub
# retries it; after a day the message expires and the next day's run (whose window overlaps) takes the
# rows instead. The OAuth token is the SVYAZ_METRICA_OAUTH_TOKEN secret (secrets.tf, from the table).

variable "metrica_counter_id" {
  description = "Yandex Metrica counter (tag) id the conversions are uploaded to (SVYAZ_METRICA_COUNTER_ID). Empty: the scheduled export logs that Metrica is not configured and exports nothing (the SVYAZ_METRICA_OAUTH_TOKEN secret still needs a version for the deploy)."
  type        = string
  default     = ""

  validation {
    condition     = can(regex("^[0-9]{0,20}$", var.metrica_counter_id))
    error_message = "metrica_counter_id must be the numeric counter id (or empty)."
  }
}

variable "metrica_goal" {
  description = "Identifier of the Metrica \"JavaScript event\" goal the orders are conversions of (SVYAZ_METRICA_GOAL), e.g. offline_order."
  type        = string
  default     = "offline_order"

  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]{1,100}$", var.metrica_goal))
    error_message = "metrica_goal must be a goal identifier: letters, digits, _ . - (at most 100)."
  }
}

variable "export_schedule" {
  description = "When the daily export runs (cron, in export_time_zone). Metrica shows uploaded conversions within about two hours."
  type        = string
  default     = "0 4 * * *"

  validation {
    condition     = length(split(" ", var.export_schedule)) == 5
    error_message = "export_schedule must be a five-field cron expression such as \"0 4 * * *\"."
  }
}

variable "export_time_zone" {
  description = "Time zone of export_schedule (tz database name)."
  type        = string
  default     = "Europe/Moscow"

  validation {
    condition     = can(regex("^[A-Za-z_]+(/[A-Za-z_+-]+)*$", var.export_time_zone))
    error_message = "export_time_zone must be a tz database name such as Europe/Moscow or UTC."
  }
}

resource "google_project_service" "export" {
  for_each = toset(["cloudscheduler.googleapis.com"])

  project                    = var.project_id
  service                    = each.value
  disable_on_destroy         = false
  disable_dependent_services = false
}

resource "google_pubsub_topic" "conversions_schedule" {
  #checkov:skip=CKV_GCP_83:Carries only {"target": "metrica"}; Google-managed encryption as for the other topics.
  name                       = "${var.name_prefix}-conversions-schedule"
  message_retention_duration = "86400s"

  depends_on = [google_project_service.enabled]
}

locals {
  export_conversions_url = google_cloudfunctions2_function.function["export_conversions"].service_config[0].uri
}

resource "google_pubsub_subscription" "conversions_schedule_export" {
  name  = "${var.name_prefix}-conversions-schedule-export"
  topic = google_pubsub_topic.conversions_schedule.id

  ack_deadline_seconds       = 600 # the function may take up to its 540 s timeout
  message_retention_duration = "86400s"

  push_config {
    push_endpoint = local.export_conversions_url

    oidc_token {
      service_account_email = google_service_account.push_invoker.email
      audience              = local.export_conversions_url
    }
  }

  retry_policy {
    minimum_backoff = "60s"
    maximum_backoff = "600s"
  }

  expiration_policy {
    ttl = ""
  }

  depends_on = [google_cloud_run_service_iam_member.invoker]
}

resource "google_cloud_scheduler_job" "export_conversions" {
  name        = "${var.name_prefix}-export-conversions"
  description = "Daily offline conversions to Yandex Metrica"
  region      = var.region
  schedule    = var.export_schedule
  time_zone   = var.export_time_zone

  pubsub_target {
    topic_name = google_pubsub_topic.conversions_schedule.id
    data       = base64encode(jsonencode({ target = "metrica" }))
  }

  depends_on = [google_project_service.export]
}

# Cloud Scheduler publishes as its service agent: publish rights on this one topic only.
resource "google_pubsub_topic_iam_member" "scheduler_publisher" {
  topic  = google_pubsub_topic.conversions_schedule.id
  role   = "roles/pubsub.publisher"
  member = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-cloudscheduler.iam.gserviceaccount.com"

  depends_on = [google_project_service.export]
}
