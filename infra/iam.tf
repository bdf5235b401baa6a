# Identities and grants. Every function runs as its own service account holding only what its entry in
# local.functions asks for; nothing runs as (or is granted to) the default compute service account.

# Runtime identity of each function.
resource "google_service_account" "function" {
  for_each = local.functions

  account_id   = "${var.name_prefix}-fn-${each.value.short}"
  display_name = "svyaz function ${each.key}"
  description  = "Runtime identity of the ${each.key} Cloud Function"

  depends_on = [google_project_service.enabled]
}

# Identity whose OIDC token Pub/Sub attaches to each push of the events subscription.
resource "google_service_account" "push_invoker" {
  account_id   = "${var.name_prefix}-push-invoker"
  display_name = "svyaz Pub/Sub push invoker"
  description  = "Pub/Sub push to process_event authenticates as this account"

  depends_on = [google_project_service.enabled]
}

# Identity of the Cloud Build builds that turn the source archive into function images (instead of the
# default compute or Cloud Build service account, whose grants vary by project age and org policy).
resource "google_service_account" "build" {
  account_id   = "${var.name_prefix}-fn-build"
  display_name = "svyaz function builds"
  description  = "Builds the Cloud Functions images from the source archive"

  depends_on = [google_project_service.enabled]
}

# The roles Google documents for a custom function build service account: build logs, images in
# Artifact Registry, the source archive in Cloud Storage.
resource "google_project_iam_member" "build" {
  for_each = toset([
    "roles/logging.logWriter",
    "roles/artifactregistry.writer",
    "roles/storage.objectAdmin",
  ])

  project = var.project_id
  role    = each.value
  member  = "serviceAccount:${google_service_account.build.email}"
}

# Publish rights, per topic, only for the functions that publish there.
resource "google_pubsub_topic_iam_member" "publisher" {
  for_each = local.publisher_grants

  topic  = local.topics[each.value.topic].id
  role   = "roles/pubsub.publisher"
  member = "serviceAccount:${google_service_account.function[each.value.function].email}"
}

# Firestore roles are project roles; the condition limits them to this service's database.
resource "google_project_iam_member" "function" {
  for_each = local.project_role_grants

  project = var.project_id
  role    = each.value.role
  member  = "serviceAccount:${google_service_account.function[each.value.function].email}"

  condition {
    title       = "only-${var.name_prefix}-firestore"
    description = "Only the ${google_firestore_database.main.name} Firestore database"
    expression  = "resource.name == \"projects/${var.project_id}/databases/${google_firestore_database.main.name}\""
  }
}

# Who may invoke each function (Cloud Run invoker on the function's service): everyone for the public
# ones (they authenticate senders themselves: write keys, HMAC signatures, secret tokens, signed codes),
# only the Pub/Sub push identity for the others.
resource "google_cloud_run_service_iam_member" "invoker" {
  #checkov:skip=CKV_GCP_102:By design the channel endpoints are public (browsers, QR scans, Meta/Telegram/call-tracking/CRM webhooks cannot send Google identity tokens); each authenticates senders itself (write keys, HMAC signatures, secret tokens, signed codes). process_event is not public.
  for_each = local.functions

  project  = var.project_id
  location = google_cloudfunctions2_function.function[each.key].location
  service  = google_cloudfunctions2_function.function[each.key].name
  role     = "roles/run.invoker"
  member   = each.value.public ? "allUsers" : "serviceAccount:${google_service_account.push_invoker.email}"
}

# Pub/Sub mints the push OIDC tokens as the push invoker (needed explicitly in projects created before
# April 2021; harmless elsewhere). Scoped to that one account, not the project.
resource "google_service_account_iam_member" "push_token_creator" {
  service_account_id = google_service_account.push_invoker.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = "serviceAccount:${local.pubsub_service_agent}"
}
