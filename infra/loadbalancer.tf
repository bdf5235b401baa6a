# The brand's own domain in front of the functions (optional, off by default): a global external
# HTTPS load balancer with a Google-managed certificate, one serverless NEG and backend service per
# HTTP function, and a path rule per route of the channel registry (lb_routes.tf). The QR landing then
# runs on the brand's domain, so the scan carries the site's first-party cookies, and the webhooks,
# /collect, /svyaz.js and /v1/* have stable URLs on that domain.
#
# Point the domain's A record at the output lb_ip_address; the certificate becomes ACTIVE once DNS
# resolves there (Google's managed certificates: up to about an hour).

locals {
  lb_enabled = length(var.lb_domains) > 0
  # The functions that answer on the domain: every target of a route.
  lb_functions = local.lb_enabled ? toset(values(local.lb_routes)) : toset([])
}

resource "google_compute_global_address" "lb" {
  count = local.lb_enabled ? 1 : 0
  name  = "${var.name_prefix}-lb"

  depends_on = [google_project_service.enabled]
}

resource "google_compute_region_network_endpoint_group" "function" {
  for_each = local.lb_functions

  name                  = "${var.name_prefix}-neg-${replace(each.key, "_", "-")}"
  region                = var.region
  network_endpoint_type = "SERVERLESS"

  cloud_function {
    function = google_cloudfunctions2_function.function[each.key].name
  }
}

resource "google_compute_backend_service" "function" {
  #checkov:skip=CKV_GCP_2:No instance health check exists for serverless NEGs; the platform routes around failed instances.
  for_each = local.lb_functions

  name                  = "${var.name_prefix}-be-${replace(each.key, "_", "-")}"
  protocol              = "HTTPS"
  load_balancing_scheme = "EXTERNAL_MANAGED"

  backend {
    group = google_compute_region_network_endpoint_group.function[each.key].id
  }

  log_config {
    enable      = true
    sample_rate = 1.0
  }
}

resource "google_compute_url_map" "lb" {
  count = local.lb_enabled ? 1 : 0

  name            = "${var.name_prefix}-lb"
  default_service = var.lb_default_service != "" ? var.lb_default_service : google_compute_backend_service.function["qr_landing"].id

  host_rule {
    hosts        = var.lb_domains
    path_matcher = "svyaz"
  }

  path_matcher {
    name            = "svyaz"
    default_service = var.lb_default_service != "" ? var.lb_default_service : google_compute_backend_service.function["qr_landing"].id

    # One rule per route: the prefix itself and everything below it (the longest path wins).
    dynamic "path_rule" {
      for_each = local.lb_routes
      content {
        # /journal goes through Identity-Aware Proxy when it is on (journal_iap.tf).
        paths   = [path_rule.key, "${path_rule.key}/*"]
        service = path_rule.key == "/journal" && local.journal_iap ? one(google_compute_backend_service.journal[*].id) : google_compute_backend_service.function[path_rule.value].id
      }
    }
  }
}

resource "google_compute_managed_ssl_certificate" "lb" {
  count = local.lb_enabled ? 1 : 0
  name  = "${var.name_prefix}-lb"

  managed {
    domains = var.lb_domains
  }

  depends_on = [google_project_service.enabled]
}

resource "google_compute_target_https_proxy" "lb" {
  count = local.lb_enabled ? 1 : 0

  name             = "${var.name_prefix}-lb"
  url_map          = google_compute_url_map.lb[0].id
  ssl_certificates = [google_compute_managed_ssl_certificate.lb[0].id]
}

resource "google_compute_global_forwarding_rule" "https" {
  count = local.lb_enabled ? 1 : 0

  name                  = "${var.name_prefix}-lb-https"
  ip_protocol           = "TCP"
  load_balancing_scheme = "EXTERNAL_MANAGED"
  port_range            = "443"
  target                = google_compute_target_https_proxy.lb[0].id
  ip_address            = google_compute_global_address.lb[0].id
}

# Plain HTTP on the same address only redirects to HTTPS (the cookie is Secure).
resource "google_compute_url_map" "http_redirect" {
  count = local.lb_enabled ? 1 : 0
  name  = "${var.name_prefix}-lb-http"

  default_url_redirect {
    https_redirect         = true
    redirect_response_code = "MOVED_PERMANENTLY_DEFAULT"
    strip_query            = false
  }
}

resource "google_compute_target_http_proxy" "http_redirect" {
  count = local.lb_enabled ? 1 : 0

  name    = "${var.name_prefix}-lb-http"
  url_map = google_compute_url_map.http_redirect[0].id
}

resource "google_compute_global_forwarding_rule" "http" {
  count = local.lb_enabled ? 1 : 0

  name                  = "${var.name_prefix}-lb-http"
  ip_protocol           = "TCP"
  load_balancing_scheme = "EXTERNAL_MANAGED"
  port_range            = "80"
  target                = google_compute_target_http_proxy.http_redirect[0].id
  ip_address            = google_compute_global_address.lb[0].id
}

output "lb_ip_address" {
  description = "Address of the load balancer: the A record of every lb_domains entry (null without lb_domains)."
  value       = local.lb_enabled ? google_compute_global_address.lb[0].address : null
}

output "lb_urls" {
  description = "What to give senders when the load balancer is on: each route on the brand's domain (e.g. https://shop.example.ru/qr as the QR codes' --base-url)."
  value       = local.lb_enabled ? { for path, target in local.lb_routes : path => "https://${var.lb_domains[0]}${path}" } : {}
}
