# Secret Manager: one secret per SVYAZ_* secret variable of local.functions. Terraform creates the
# secrets and the access grants, never the values (they would land in the state file). The operator adds
# a value before the first deploy of the functions that mount it, and again to rotate it:
#
#   terraform apply -target=google_secret_manager_secret.secret        # first deploy only
#   printf %s "$VALUE" | gcloud secrets versions add svyaz-pepper --data-file=-
#   terraform apply
#
# Functions mount the "latest" version; a new version reaches new instances, so redeploy (or wait for
# instance turnover) after a rotation. Comma-separated key lists (SVYAZ_WRITE_KEYS, SVYAZ_API_KEYS,
# SVYAZ_CRM_KEYS) let each sender have its own key. `terraform output secret_ids` lists the names.

locals {
  # SVYAZ_WRITE_KEYS -> "<name_prefix>-write-keys"
  secret_ids = {
    for env in local.secret_env_vars : env => "${var.name_prefix}-${lower(replace(trimprefix(env, "SVYAZ_"), "_", "-"))}"
  }
}

resource "google_secret_manager_secret" "secret" {
  for_each = local.secret_ids

  secret_id = each.value
  labels = {
    env_var = lower(each.key)
  }

  replication {
    auto {}
  }

  depends_on = [google_project_service.enabled]
}

# Each secret is readable only by the service accounts of the functions that mount it.
resource "google_secret_manager_secret_iam_member" "accessor" {
  for_each = local.secret_grants

  secret_id = google_secret_manager_secret.secret[each.value.secret].id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.function[each.value.function].email}"
}
