# Identity-Aware Proxy in front of the customer journal (optional; needs the load balancer, lb_domains).
# Then people sign in with their Google accounts and the IAP identity is the journal's user
# (docs/journal.md, "Signing in"). Two applies, because the function cannot name the backend that
# is built from it (a cycle):
#
#   1. journal_iap_members = ["group:marketing@shop.example.ru"]   -> /journal/* goes through IAP;
#      the journal still asks for its password as well (SVYAZ_JOURNAL_AUTH=key).
#   2. journal_iap_audience = <terraform output journal_iap_audience> -> the function verifies IAP's
#      signed header (ES256, issuer, this audience) on every request and drops its own sign-in
#      (SVYAZ_JOURNAL_AUTH=iap). A request that reaches the function without a valid assertion (its
#      own run.app URL, another path) is not signed in: the header cannot be forged.
#
# The rest of the profiles function (/profiles API with its keys) stays outside IAP: its own backend.

variable "journal_iap_members" {
  description = "Who may open /journal through Identity-Aware Proxy (user:, group:, domain: members). Empty: no IAP, the journal's own sign-in."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for m in var.journal_iap_members : can(regex("^(user|group|domain|serviceAccount):[^ ]+$", m))])
    error_message = "Each journal_iap_members entry is an IAM member such as group:marketing@shop.example.ru."
  }
}

locals {
  # With journal_iap_audience set, settings.tf gives the functions SVYAZ_JOURNAL_AUTH=iap and it.
  journal_iap = local.lb_enabled && length(var.journal_iap_members) > 0
}

data "google_project" "current" {
  count = local.journal_iap ? 1 : 0
}

# The journal's own backend on the profiles function's NEG, with IAP on (Google-managed OAuth client).
resource "google_compute_backend_service" "journal" {
  #checkov:skip=CKV_GCP_2:No instance health check exists for serverless NEGs.
  count = local.journal_iap ? 1 : 0

  name                  = "${var.name_prefix}-be-journal"
  protocol              = "HTTPS"
  load_balancing_scheme = "EXTERNAL_MANAGED"

  backend {
    group = google_compute_region_network_endpoint_group.function["profiles"].id
  }

  iap {
    enabled = true
  }

  log_config {
    enable      = true
    sample_rate = 1.0
  }
}

resource "google_iap_web_backend_service_iam_member" "journal" {
  for_each = local.journal_iap ? toset(var.journal_iap_members) : toset([])

  web_backend_service = google_compute_backend_service.journal[0].name
  role                = "roles/iap.httpsResourceAccessor"
  member              = each.value
}

output "journal_iap_audience" {
  description = "Set journal_iap_audience to this and apply again, so the journal verifies IAP's signed header."
  value       = local.journal_iap ? "/projects/${one(data.google_project.current[*].number)}/global/backendServices/${one(google_compute_backend_service.journal[*].generated_id)}" : null
}
