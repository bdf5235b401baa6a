# Pub/Sub: the collectors queue events on `events`; process_event receives them by authenticated push,
# applies them to Firestore and announces changed profiles on `profile-updates`. Messages that fail
# 10 deliveries go to `events-dead-letter`, where a pull subscription keeps them for inspection/replay.

resource "google_pubsub_topic" "events" {
  #checkov:skip=CKV_GCP_83:Encrypted at rest with Google-managed keys. A customer-managed KMS key would need a key ring per location, its own IAM for the Pub/Sub agent and key-rotation operations; add kms_key_name when a customer requires CMEK.
  name                       = "${var.name_prefix}-events"
  message_retention_duration = "604800s" # 7 days: a subscription can be replayed (seek) after a bad deploy

  depends_on = [google_project_service.enabled]
}

resource "google_pubsub_topic" "profile_updates" {
  #checkov:skip=CKV_GCP_83:Encrypted at rest with Google-managed keys. A customer-managed KMS key would need a key ring per location, its own IAM for the Pub/Sub agent and key-rotation operations; add kms_key_name when a customer requires CMEK.
  name                       = "${var.name_prefix}-profile-updates"
  message_retention_duration = "604800s"

  depends_on = [google_project_service.enabled]
}

resource "google_pubsub_topic" "events_dead_letter" {
  #checkov:skip=CKV_GCP_83:Encrypted at rest with Google-managed keys. A customer-managed KMS key would need a key ring per location, its own IAM for the Pub/Sub agent and key-rotation operations; add kms_key_name when a customer requires CMEK.
  name                       = "${var.name_prefix}-events-dead-letter"
  message_retention_duration = "604800s"

  depends_on = [google_project_service.enabled]
}

locals {
  # Topics a function may publish to (the publishes_to keys of local.functions).
  topics = {
    events          = google_pubsub_topic.events
    profile_updates = google_pubsub_topic.profile_updates
    touchpoints     = google_pubsub_topic.touchpoints # bigquery.tf
  }

  process_event_url = google_cloudfunctions2_function.function["process_event"].service_config[0].uri
}

# Push delivery of every event to process_event, with an OIDC token of the push invoker service account
# (the function is not public: only that account may invoke it).
resource "google_pubsub_subscription" "events_process_event" {
  name  = "${var.name_prefix}-events-process-event"
  topic = google_pubsub_topic.events.id

  ack_deadline_seconds       = 60
  message_retention_duration = "604800s"
  # Events carry an ordering key derived from their strongest anonymous identifier (a browser,
  # an app install): one customer's events are pushed one after the other, so a busy customer's
  # own events never contend with each other; different customers still run in parallel.
  enable_message_ordering = true

  push_config {
    push_endpoint = local.process_event_url

    oidc_token {
      service_account_email = google_service_account.push_invoker.email
      audience              = local.process_event_url
    }
  }

  retry_policy {
    minimum_backoff = "10s"
    maximum_backoff = "600s"
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.events_dead_letter.id
    max_delivery_attempts = 10
  }

  # Never delete the subscription for inactivity (the default is after 31 idle days).
  expiration_policy {
    ttl = ""
  }

  depends_on = [
    google_pubsub_topic_iam_member.dead_letter_publisher,
    google_cloud_run_service_iam_member.invoker,
  ]
}

# Dead-lettered events wait here (7 days) to be inspected and republished: nothing is lost silently.
resource "google_pubsub_subscription" "events_dead_letter" {
  name  = "${var.name_prefix}-events-dead-letter"
  topic = google_pubsub_topic.events_dead_letter.id

  ack_deadline_seconds       = 60
  message_retention_duration = "604800s"
  retain_acked_messages      = false

  # Nobody pulls from it in normal operation: it must not expire for inactivity.
  expiration_policy {
    ttl = ""
  }
}

# Dead-lettering is done by the Pub/Sub service agent: it must publish to the dead-letter topic and
# acknowledge (subscribe to) the source subscription.
resource "google_pubsub_topic_iam_member" "dead_letter_publisher" {
  topic  = google_pubsub_topic.events_dead_letter.id
  role   = "roles/pubsub.publisher"
  member = "serviceAccount:${local.pubsub_service_agent}"
}

resource "google_pubsub_subscription_iam_member" "dead_letter_subscriber" {
  subscription = google_pubsub_subscription.events_process_event.id
  role         = "roles/pubsub.subscriber"
  member       = "serviceAccount:${local.pubsub_service_agent}"
}
