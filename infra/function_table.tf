# The function table: one entry per Cloud Function target (an entry point in functions/main.py).
# Adding a function is one entry here; functions.tf, iam.tf and secrets.tf derive everything from it.
#
# This file holds literals only (no var., resource or data references) so that tests can evaluate it on
# its own with `terraform console`, without providers. Keys:
#   short         used in the service account id "<name_prefix>-fn-<short>" (at most 12 characters)
#   public        true: allUsers may invoke it (the function authenticates senders itself);
#                 false: only the Pub/Sub push service account may invoke it
#   publishes_to  topics (keys of local.topics in pubsub.tf) it may publish to
#   project_roles project roles, limited to the service's Firestore database by an IAM condition
#   secrets       SVYAZ_* variables mounted from Secret Manager; each secret is readable only by the
#                 service accounts of the functions that list it
#   timeout       request timeout in seconds

locals {
  functions = {
    collect = {
      description   = "Web and app events: checks the sender's write key, queues the events"
      short         = "collect"
      public        = true
      publishes_to  = ["events"]
      project_roles = []
      secrets       = ["SVYAZ_WRITE_KEYS"]
      timeout       = 30
    }
    process_event = {
      description   = "Applies queued events to the identity graph (Pub/Sub push from the events topic)"
      short         = "process"
      public        = false
      publishes_to  = ["profile_updates", "events", "touchpoints"]
      project_roles = ["roles/datastore.user"]
      secrets       = ["SVYAZ_PEPPER"]
      timeout       = 60
    }
    profiles = {
      description   = "Profile read API and explanation; erasure and split requests (queued on the events topic); the blocklist; the customer journal"
      short         = "profiles"
      public        = true
      publishes_to  = ["events"]
      project_roles = ["roles/datastore.user"]
      secrets       = ["SVYAZ_API_KEYS", "SVYAZ_PEPPER", "SVYAZ_JOURNAL_SECRET", "SVYAZ_JOURNAL_KEYS"]
      timeout       = 30
    }
    qr_landing = {
      description   = "QR / NFC landing in offline stores: records the visit, redirects"
      short         = "qr"
      public        = true
      publishes_to  = ["events"]
      project_roles = []
      secrets       = ["SVYAZ_QR_SIGNING_KEY"]
      timeout       = 10
    }
    whatsapp_webhook = {
      description   = "WhatsApp Business Cloud API webhook"
      short         = "whatsapp"
      public        = true
      publishes_to  = ["events"]
      project_roles = []
      secrets       = ["SVYAZ_WHATSAPP_APP_SECRET", "SVYAZ_WHATSAPP_VERIFY_TOKEN"]
      timeout       = 30
    }
    telegram_webhook = {
      description   = "Telegram bot webhook"
      short         = "telegram"
      public        = true
      publishes_to  = ["events"]
      project_roles = []
      secrets       = ["SVYAZ_TELEGRAM_SECRET_TOKEN"]
      timeout       = 30
    }
    calltracking_webhook = {
      description   = "Call-tracking notifications"
      short         = "calltracking"
      public        = true
      publishes_to  = ["events"]
      project_roles = []
      secrets       = ["SVYAZ_CALLTRACKING_TOKEN"]
      timeout       = 30
    }
    mango_webhook = {
      description   = "Mango Office VPBX API Realtime events"
      short         = "mango"
      public        = true
      publishes_to  = ["events"]
      project_roles = []
      secrets       = ["SVYAZ_MANGO_API_KEY", "SVYAZ_MANGO_API_SALT"]
      timeout       = 30
    }
    amocrm_webhook = {
      description   = "amoCRM deal webhooks"
      short         = "amocrm"
      public        = true
      publishes_to  = ["events"]
      project_roles = []
      secrets       = ["SVYAZ_AMOCRM_WEBHOOK_SECRET", "SVYAZ_AMOCRM_BASE_URL", "SVYAZ_AMOCRM_TOKEN"]
      timeout       = 60
    }
    bitrix24_webhook = {
      description   = "Bitrix24 deal webhooks"
      short         = "bitrix24"
      public        = true
      publishes_to  = ["events"]
      project_roles = []
      secrets       = ["SVYAZ_BITRIX24_WEBHOOK_SECRET", "SVYAZ_BITRIX24_APPLICATION_TOKEN", "SVYAZ_BITRIX24_REST_URL"]
      timeout       = 60
    }
    crm_webhook = {
      description   = "CRM deals and offline orders"
      short         = "crm"
      public        = true
      publishes_to  = ["events"]
      project_roles = []
      secrets       = ["SVYAZ_CRM_KEYS"]
      timeout       = 60
    }
    export_conversions = {
      description   = "Daily offline conversions to Yandex Metrica (Cloud Scheduler via Pub/Sub push)"
      short         = "export"
      public        = false
      publishes_to  = []
      project_roles = ["roles/datastore.user"]
      secrets       = ["SVYAZ_PEPPER", "SVYAZ_METRICA_OAUTH_TOKEN"]
      timeout       = 540
    }
  }

  # Every secret any function mounts: one Secret Manager secret each.
  secret_env_vars = toset(flatten([for fn in local.functions : fn.secrets]))

  # "<function>/<secret>" -> grant of roles/secretmanager.secretAccessor on that secret.
  secret_grants = merge([
    for name, fn in local.functions : {
      for secret in fn.secrets : "${name}/${secret}" => { function = name, secret = secret }
    }
  ]...)

  # "<function>/<topic>" -> grant of roles/pubsub.publisher on that topic.
  publisher_grants = merge([
    for name, fn in local.functions : {
      for topic in fn.publishes_to : "${name}/${topic}" => { function = name, topic = topic }
    }
  ]...)

  # "<function>/<role>" -> project role (conditioned on the Firestore database).
  project_role_grants = merge([
    for name, fn in local.functions : {
      for role in fn.project_roles : "${name}/${role}" => { function = name, role = role }
    }
  ]...)
}
