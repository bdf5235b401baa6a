# Cloud Functions (2nd gen), one per entry of local.functions, all built from one source archive.

resource "google_storage_bucket" "function_source" {
  #checkov:skip=CKV_GCP_62:Holds only build inputs (our own code, no personal data); writes come from Terraform and reads from the build service account, both recorded by Cloud Audit Logs. A separate access-log bucket would add cost and a second bucket to secure for nothing.
  name     = "${var.project_id}-${var.name_prefix}-fn-source"
  location = var.region

  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false

  versioning {
    enabled = true
  }

  # Superseded archives are kept a month (for a rollback), then deleted.
  lifecycle_rule {
    condition {
      days_since_noncurrent_time = 30
      with_state                 = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.enabled]
}

# The object name carries the archive's MD5: the archive is byte-reproducible, so a new name (and a
# redeploy of every function) happens only when the code or the pinned requirements really changed.
resource "google_storage_bucket_object" "function_source" {
  name   = "functions-${filemd5(var.source_archive)}.zip"
  bucket = google_storage_bucket.function_source.name
  source = var.source_archive
}

locals {
  # Non-secret configuration, the same for every function (see shared/svyaz/app/config.py).
  function_env = {
    SVYAZ_ENV                   = "production"
    SVYAZ_STORE                 = "firestore"
    SVYAZ_GCP_PROJECT           = var.project_id
    SVYAZ_FIRESTORE_DATABASE    = google_firestore_database.main.name
    SVYAZ_EVENTS_TOPIC          = google_pubsub_topic.events.name
    SVYAZ_PROFILE_UPDATES_TOPIC = google_pubsub_topic.profile_updates.name
    SVYAZ_QR_ALLOWED_HOSTS      = join(",", var.qr_allowed_hosts)
    SVYAZ_TOUCHPOINTS_TOPIC     = google_pubsub_topic.touchpoints.name # bigquery.tf
    SVYAZ_METRICA_COUNTER_ID    = var.metrica_counter_id               # export.tf
    SVYAZ_METRICA_GOAL          = var.metrica_goal
  }
}

resource "google_cloudfunctions2_function" "function" {
  #checkov:skip=CKV_GCP_124:Public functions are reached by browsers, shoppers' phones and vendors' webhooks, so they must accept internet traffic (each authenticates its senders). process_event is guarded by IAM (only the push service account may invoke it); internal-only ingress would reject Pub/Sub push outside a VPC Service Controls perimeter.
  for_each = local.functions

  name        = "${var.name_prefix}-${replace(each.key, "_", "-")}"
  location    = var.region
  description = each.value.description

  build_config {
    runtime         = "python311" # the one Python version: pyproject.toml, CI, the lock (tests/infra)
    entry_point     = each.key
    service_account = google_service_account.build.id

    source {
      storage_source {
        bucket = google_storage_bucket.function_source.name
        object = google_storage_bucket_object.function_source.name
      }
    }
  }

  service_config {
    service_account_email          = google_service_account.function[each.key].email
    available_memory               = var.function_memory
    timeout_seconds                = each.value.timeout
    min_instance_count             = 0
    max_instance_count             = var.max_instance_count
    ingress_settings               = "ALLOW_ALL"
    all_traffic_on_latest_revision = true

    environment_variables = merge(local.function_env, local.runtime_env) # settings.tf

    dynamic "secret_environment_variables" {
      for_each = toset(each.value.secrets)
      content {
        key        = secret_environment_variables.value
        project_id = var.project_id
        secret     = google_secret_manager_secret.secret[secret_environment_variables.value].secret_id
        version    = "latest"
      }
    }
  }

  depends_on = [
    google_project_service.enabled,
    google_secret_manager_secret_iam_member.accessor,
    google_project_iam_member.build,
  ]
}
