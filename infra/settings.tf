# Runtime settings of the service (shared/svyaz/app/config.py), deployable from Terraform variables.
# An empty value (or map) leaves the service's own default; each set one becomes the SVYAZ_* variable
# of every function (local.runtime_env, merged into the environment in functions.tf).
#
# This file holds variables and locals over them only (no resources), so that tests evaluate the
# validations and local.runtime_env with `terraform console`, without providers.

variable "policy_toml" {
  description = "The identifier policy (TOML, as in the README's policy section: limits, priorities, blocklists, your own kinds), deployed as SVYAZ_POLICY. Empty: the defaults. E.g. file(\"policy.toml\")."
  type        = string
  default     = ""

  validation {
    condition     = length(var.policy_toml) <= 32768
    error_message = "policy_toml must be at most 32 KiB (it travels in an environment variable)."
  }
}

variable "whatsapp_session_pattern" {
  description = "Regex whose group 1 is the site session id in a WhatsApp message (SVYAZ_WHATSAPP_SESSION_PATTERN). Empty: the default, which matches \"номер заявки 1980094328\"."
  type        = string
  default     = ""

  validation {
    condition     = var.whatsapp_session_pattern == "" || can(regex("\\((\\?P<[a-z_]+>|[^?])", var.whatsapp_session_pattern))
    error_message = "whatsapp_session_pattern must have a capturing group: group 1 is the session id."
  }
}

variable "cookie_domain" {
  description = "Domain of svyaz's first-party visitor cookie set by the QR landing (SVYAZ_COOKIE_DOMAIN), e.g. shop.example.ru to share it with subdomains. Empty: host-only."
  type        = string
  default     = ""

  validation {
    condition     = var.cookie_domain == "" || can(regex("^\\.?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)+[a-z]{2,63}$", var.cookie_domain))
    error_message = "cookie_domain must be a lowercase domain such as shop.example.ru (no scheme, path or port)."
  }
}

variable "calltracking_vendor" {
  description = "Preset of /webhooks/calltracking (SVYAZ_CALLTRACKING_VENDOR): generic, calltouch or uis."
  type        = string
  default     = "generic"

  validation {
    condition     = contains(["generic", "calltouch", "uis"], var.calltracking_vendor)
    error_message = "calltracking_vendor must be generic, calltouch or uis."
  }
}

variable "calltracking_field_map" {
  description = "Call-tracking field name -> svyaz field, over the preset's names (SVYAZ_CALLTRACKING_FIELD_MAP), e.g. { caller = \"caller_phone\", visit = \"session_id\" }."
  type        = map(string)
  default     = {}
}

variable "calltracking_number_sources" {
  description = "Static tracking number -> the ad source it stands for, used when a call names none (SVYAZ_CALLTRACKING_NUMBER_SOURCES), e.g. { \"74951112233\" = { source = \"yandex\", medium = \"cpc\" } }."
  type        = map(map(string))
  default     = {}

  validation {
    condition     = alltrue([for number, source in var.calltracking_number_sources : can(regex("^[0-9]{5,15}$", number)) && contains(keys(source), "source")])
    error_message = "calltracking_number_sources keys must be phone numbers (digits only) and each value must have a source."
  }
}

variable "calltracking_timezone" {
  description = "Time zone of the call-tracking account: call times sent without an offset are in it (SVYAZ_CALLTRACKING_TIMEZONE)."
  type        = string
  default     = "Europe/Moscow"

  validation {
    condition     = can(regex("^(UTC|[A-Z][A-Za-z_]+(/[A-Z][A-Za-z0-9_+-]+){1,2})$", var.calltracking_timezone))
    error_message = "calltracking_timezone must be an IANA time zone name such as Europe/Moscow."
  }
}

variable "journal_timezone" {
  description = "Time zone of the customer journal's dates (SVYAZ_JOURNAL_TIMEZONE)."
  type        = string
  default     = "Europe/Moscow"

  validation {
    condition     = can(regex("^(UTC|[A-Z][A-Za-z_]+(/[A-Z][A-Za-z0-9_+-]+){1,2})$", var.journal_timezone))
    error_message = "journal_timezone must be an IANA time zone name such as Europe/Moscow."
  }
}

# Identity-Aware Proxy in front of the journal: see journal_iap.tf.
variable "journal_iap_audience" {
  description = "The IAP JWT audience the journal verifies (terraform output journal_iap_audience, after the first apply with journal_iap_members). Empty: the journal keeps its own sign-in."
  type        = string
  default     = ""

  validation {
    condition     = var.journal_iap_audience == "" || can(regex("^/projects/[0-9]+/global/backendServices/[0-9]+$", var.journal_iap_audience))
    error_message = "journal_iap_audience looks like /projects/<project number>/global/backendServices/<backend id>."
  }
}

variable "tracking_id_kinds" {
  description = "Segment / RudderStack id field -> identifier kind, over the defaults (SVYAZ_TRACKING_ID_KINDS), e.g. { anonymousId = \"client_id\" }."
  type        = map(string)
  default     = {}
}

variable "telegram_bot_username" {
  description = "The Telegram bot of the deep links (SVYAZ_TELEGRAM_BOT_USERNAME). Empty: svyaz_bot."
  type        = string
  default     = ""

  validation {
    condition     = var.telegram_bot_username == "" || can(regex("^[A-Za-z][A-Za-z0-9_]{4,31}$", var.telegram_bot_username))
    error_message = "telegram_bot_username must be a Telegram bot username (5-32 letters, digits or _)."
  }
}

variable "qr_publish_deadline_seconds" {
  description = "How long the QR landing waits for Pub/Sub before answering (SVYAZ_QR_PUBLISH_DEADLINE_SECONDS). 0 publishes after the answer: only with always-allocated CPU for qr_landing, else a throttled instance may lose the scan."
  type        = number
  default     = 2

  validation {
    condition     = var.qr_publish_deadline_seconds >= 0 && var.qr_publish_deadline_seconds <= 10
    error_message = "qr_publish_deadline_seconds must be between 0 and 10."
  }
}

locals {
  # SVYAZ_* variable -> value; empty ones are left out so the service keeps its default.
  runtime_settings = {
    SVYAZ_POLICY                      = var.policy_toml
    SVYAZ_WHATSAPP_SESSION_PATTERN    = var.whatsapp_session_pattern
    SVYAZ_COOKIE_DOMAIN               = var.cookie_domain
    SVYAZ_CALLTRACKING_VENDOR         = var.calltracking_vendor
    SVYAZ_CALLTRACKING_FIELD_MAP      = length(var.calltracking_field_map) > 0 ? jsonencode(var.calltracking_field_map) : ""
    SVYAZ_CALLTRACKING_NUMBER_SOURCES = length(var.calltracking_number_sources) > 0 ? jsonencode(var.calltracking_number_sources) : ""
    SVYAZ_CALLTRACKING_TIMEZONE       = var.calltracking_timezone
    SVYAZ_JOURNAL_TIMEZONE            = var.journal_timezone
    SVYAZ_JOURNAL_AUTH                = var.journal_iap_audience != "" ? "iap" : "" # journal_iap.tf
    SVYAZ_JOURNAL_IAP_AUDIENCE        = var.journal_iap_audience
    SVYAZ_TRACKING_ID_KINDS           = length(var.tracking_id_kinds) > 0 ? jsonencode(var.tracking_id_kinds) : ""
    SVYAZ_TELEGRAM_BOT_USERNAME       = var.telegram_bot_username
    SVYAZ_QR_PUBLISH_DEADLINE_SECONDS = tostring(var.qr_publish_deadline_seconds)
  }
  runtime_env = { for name, value in local.runtime_settings : name => value if value != "" }
}
