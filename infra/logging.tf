# Request logs that would keep a secret: amoCRM's account webhooks are not signed and take a URL
# only (https://www.amocrm.ru/developers/content/crm_platform/webhooks-format), so their URL holds
# the secret (/webhooks/crm/amocrm/<secret>, or ?key=); so do Bitrix24's deprecated handler URLs. Cloud Run
# (the functions' request log, run.googleapis.com/requests) and the load balancer (requests)
# record each request's full URL: those entries are excluded from the _Default sink, so they are
# never stored. svyaz's own logs (stdout) are kept: they never hold the secret.
#
# The prefixes are the registry's functions with secret_in_path (checked by tests/infra). Logging
# query language: ":" is "contains", and OR binds tighter than AND, hence the parentheses
# (https://cloud.google.com/logging/docs/view/logging-query-language).

locals {
  # The secret is the path segment below them or ?key=.
  secret_url_prefixes = ["/webhooks/crm/amocrm", "/webhooks/crm/bitrix24"]
  # Functions whose every URL holds a secret, also when called on their own run.app URL.
  secret_url_functions = ["amocrm_webhook"]

  secret_url_match = join(" OR ", concat(
    flatten([for prefix in local.secret_url_prefixes : ["httpRequest.requestUrl:\"${prefix}/\"", "httpRequest.requestUrl:\"${prefix}?\""]]),
    [for name in local.secret_url_functions : "resource.labels.service_name=\"${var.name_prefix}-${replace(name, "_", "-")}\""],
  ))
  secret_url_filter = "(log_id(\"run.googleapis.com/requests\") OR log_id(\"requests\")) AND (${local.secret_url_match})"
}

resource "google_logging_project_exclusion" "secret_urls" {
  project     = var.project_id
  name        = "${var.name_prefix}-secret-urls"
  description = "Request log entries whose URL holds a webhook secret (amoCRM; Bitrix24's deprecated URLs): never stored."
  filter      = local.secret_url_filter
}
