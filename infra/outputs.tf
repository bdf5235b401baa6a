output "function_urls" {
  description = "URL of every function (Cloud Run service URL), by entry point."
  value       = { for name, fn in google_cloudfunctions2_function.function : name => fn.service_config[0].uri }
}

output "public_urls" {
  description = "URLs reachable from the internet, by entry point: give these to senders (site tag, vendors' webhook settings, QR code base URL)."
  value = {
    for name, fn in google_cloudfunctions2_function.function : name => fn.service_config[0].uri
    if local.functions[name].public
  }
}

output "collect_url" {
  description = "Endpoint for web and app events."
  value       = google_cloudfunctions2_function.function["collect"].service_config[0].uri
}

output "profiles_url" {
  description = "Profile read and erasure API."
  value       = google_cloudfunctions2_function.function["profiles"].service_config[0].uri
}

output "qr_landing_url" {
  description = "QR / NFC landing (put it behind the brand's own domain so it sees first-party cookies)."
  value       = google_cloudfunctions2_function.function["qr_landing"].service_config[0].uri
}

output "webhook_urls" {
  description = "Webhook URLs to configure in WhatsApp (Meta app), Telegram (setWebhook), the call-tracking service and the CRM."
  value = {
    whatsapp     = google_cloudfunctions2_function.function["whatsapp_webhook"].service_config[0].uri
    telegram     = google_cloudfunctions2_function.function["telegram_webhook"].service_config[0].uri
    calltracking = google_cloudfunctions2_function.function["calltracking_webhook"].service_config[0].uri
    mango        = google_cloudfunctions2_function.function["mango_webhook"].service_config[0].uri
    crm          = google_cloudfunctions2_function.function["crm_webhook"].service_config[0].uri
    amocrm       = google_cloudfunctions2_function.function["amocrm_webhook"].service_config[0].uri
    bitrix24     = google_cloudfunctions2_function.function["bitrix24_webhook"].service_config[0].uri
  }
}

output "topics" {
  description = "Pub/Sub topic short names."
  value = {
    events             = google_pubsub_topic.events.name
    profile_updates    = google_pubsub_topic.profile_updates.name
    events_dead_letter = google_pubsub_topic.events_dead_letter.name
  }
}

output "dead_letter_subscription" {
  description = "Pull subscription holding dead-lettered events (inspect with gcloud pubsub subscriptions pull)."
  value       = google_pubsub_subscription.events_dead_letter.name
}

output "secret_ids" {
  description = "Secret Manager secret id of each SVYAZ_* secret; add values with: gcloud secrets versions add ID --data-file=-"
  value       = { for env, secret in google_secret_manager_secret.secret : env => secret.secret_id }
}

output "function_service_accounts" {
  description = "Runtime service account of each function."
  value       = { for name, sa in google_service_account.function : name => sa.email }
}

output "firestore_database" {
  description = "Firestore database id (SVYAZ_FIRESTORE_DATABASE)."
  value       = google_firestore_database.main.name
}
