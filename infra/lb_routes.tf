# Generated from the channel registry (svyaz.entrypoints.registry) by `svyaz package --routes`;
# tests/infra fails until it matches. Literals only: tests evaluate it with `terraform console`.
# Path prefix on the brand's domain -> the function serving it (loadbalancer.tf).

locals {
  lb_routes = {
    "/beacon"                      = "collect"
    "/blocklist"                   = "profiles"
    "/collect"                     = "collect"
    "/journal"                     = "profiles"
    "/openapi.json"                = "profiles"
    "/profiles"                    = "profiles"
    "/qr"                          = "qr_landing"
    "/splits"                      = "profiles"
    "/svyaz.js"                    = "collect"
    "/v1"                          = "collect"
    "/webhooks/calltracking"       = "calltracking_webhook"
    "/webhooks/calltracking/mango" = "mango_webhook"
    "/webhooks/crm"                = "crm_webhook"
    "/webhooks/crm/amocrm"         = "amocrm_webhook"
    "/webhooks/crm/bitrix24"       = "bitrix24_webhook"
    "/webhooks/telegram"           = "telegram_webhook"
    "/webhooks/whatsapp"           = "whatsapp_webhook"
  }
}
