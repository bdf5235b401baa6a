# Firestore (native mode): identity graph, touchpoints and idempotency records.
# Layout: identifiers/{keyed hash}, profiles/{id}, touchpoints/{event id}, processed_events/{event id}.

resource "google_firestore_database" "main" {
  project     = var.project_id
  name        = var.firestore_database
  location_id = var.firestore_location # read the variable's description (152-FZ) before choosing
  type        = "FIRESTORE_NATIVE"

  point_in_time_recovery_enablement = "POINT_IN_TIME_RECOVERY_ENABLED"
  delete_protection_state           = "DELETE_PROTECTION_ENABLED"
  # `terraform destroy` only forgets the database; it is never deleted from here.
  deletion_policy = "ABANDON"

  depends_on = [google_project_service.enabled]
}

# Idempotency records expire by themselves: Firestore TTL deletes documents of processed_events once
# their expire_at timestamp has passed (within about a day). The field is also exempt from indexing:
# a monotonically growing timestamp index would be a write hotspot and is never queried.
resource "google_firestore_field" "processed_events_ttl" {
  project    = var.project_id
  database   = google_firestore_database.main.name
  collection = "processed_events"
  field      = "expire_at"

  ttl_config {}
  index_config {}
}

# What erasure leaves of a touchpoint (a stub without personal data: `erased`, `expire_at`, so a
# redelivered old event stays a duplicate) expires by itself too, after the same time as the
# idempotency records (Pub/Sub redelivers for at most 7 days). Only stubs carry expire_at.
resource "google_firestore_field" "touchpoint_stubs_ttl" {
  project    = var.project_id
  database   = google_firestore_database.main.name
  collection = "touchpoints"
  field      = "expire_at"

  ttl_config {}
  index_config {}
}

# Single-field index exemptions for fields that are never queried: fewer index writes per document
# (cost, latency) and no index entry limit trouble for free-form maps. An exemption on a map field
# applies to all its subfields. Queried, so kept: identifiers.profile_id (the identifiers of a
# profile), profiles.merged_into (the tombstones of a family), touchpoints.profile_id / type /
# timestamp / attributed (history, aggregates, order credit, reports), processed_events.profile_ids,
# audit.profile_ids and splits.profile_id (what an erasure deletes or rewrites).
locals {
  firestore_unindexed_fields = {
    "profiles.traits"            = { collection = "profiles", field = "traits" }
    "profiles.identifier_counts" = { collection = "profiles", field = "identifier_counts" }
    # Written by profiles before the O(1) layout (identifier lists); never queried.
    "profiles.identifiers"   = { collection = "profiles", field = "identifiers" }
    "profiles.last_order_ms" = { collection = "profiles", field = "last_order_ms" }
    # Seen times: queried only through the journal's composite indexes (below).
    "profiles.last_seen_ms"  = { collection = "profiles", field = "last_seen_ms" }
    "profiles.first_seen_ms" = { collection = "profiles", field = "first_seen_ms" }
    "touchpoints.properties" = { collection = "touchpoints", field = "properties" }
    # When a fast-path write's read began: read back by the settle jobs (filtered in Python,
    # never queried), and a timestamp every page view writes would be an index hotspot.
    "touchpoints.written_ms" = { collection = "touchpoints", field = "written_ms" }
    # A replay's outcome and jobs are read by document id only; profile_ids stays indexed
    # (erasure finds the records naming the family with array-contains-any).
    "processed_events.outcome"   = { collection = "processed_events", field = "outcome" }
    "processed_events.jobs"      = { collection = "processed_events", field = "jobs" }
    "touchpoints.identifiers"    = { collection = "touchpoints", field = "identifiers" }
    "touchpoints.context"        = { collection = "touchpoints", field = "context" }
    "touchpoints.credit"         = { collection = "touchpoints", field = "credit" }
    "touchpoints.traits"         = { collection = "touchpoints", field = "traits" }
    "splits.result"              = { collection = "splits", field = "result" }
    "audit.details"              = { collection = "audit", field = "details" }
    "identifiers.last_seen"      = { collection = "identifiers", field = "last_seen" }
    "identifiers.first_seen"     = { collection = "identifiers", field = "first_seen" }
    "identifiers.value"          = { collection = "identifiers", field = "value" }
    "identifiers.linked_through" = { collection = "identifiers", field = "linked_through" }
  }
}

resource "google_firestore_field" "unindexed" {
  for_each = local.firestore_unindexed_fields

  project    = var.project_id
  database   = google_firestore_database.main.name
  collection = each.value.collection
  field      = each.value.field

  # An empty index_config disables every single-field index of the field.
  index_config {}
}

# Touch history of a profile: where profile_id == X order by timestamp desc.
resource "google_firestore_index" "touchpoints_by_profile" {
  project     = var.project_id
  database    = google_firestore_database.main.name
  collection  = "touchpoints"
  query_scope = "COLLECTION"

  fields {
    field_path = "profile_id"
    order      = "ASCENDING"
  }

  fields {
    field_path = "timestamp"
    order      = "DESCENDING"
  }
}

# Attribution report: every order of a period (where type == "order" and timestamp in [from, to)).
resource "google_firestore_index" "touchpoints_by_type_and_time" {
  project     = var.project_id
  database    = google_firestore_database.main.name
  collection  = "touchpoints"
  query_scope = "COLLECTION"

  fields {
    field_path = "type"
    order      = "ASCENDING"
  }

  fields {
    field_path = "timestamp"
    order      = "ASCENDING"
  }
}

# The customer journal (shared/svyaz/adapters/customers/firestore.py). Composite indexes serve its
# queries whatever the single-field exemptions above; the Firestore emulator does not enforce
# indexes, so a query missing one shows up on the first page view in production (the error names
# the index to create). Totals: aggregation queries over a cohort (status, first_seen_ms range) with
# one or two more range filters; the list: newest activity first, with optional first-touch
# equalities (index merging combines these per-field indexes).
locals {
  journal_indexes = {
    profiles_cohort            = [["status", "ASCENDING"], ["first_seen_ms", "ASCENDING"]]
    profiles_cohort_orders     = [["status", "ASCENDING"], ["counters.orders", "ASCENDING"], ["first_seen_ms", "ASCENDING"]]
    profiles_cohort_leads      = [["status", "ASCENDING"], ["counters.leads", "ASCENDING"], ["first_seen_ms", "ASCENDING"]]
    profiles_cohort_both       = [["status", "ASCENDING"], ["counters.leads", "ASCENDING"], ["counters.orders", "ASCENDING"], ["first_seen_ms", "ASCENDING"]]
    profiles_cohort_first_buy  = [["status", "ASCENDING"], ["first_order_ms", "ASCENDING"], ["first_seen_ms", "ASCENDING"]]
    profiles_top_revenue       = [["status", "ASCENDING"], ["counters.revenue", "DESCENDING"], ["first_seen_ms", "DESCENDING"]]
    profiles_newest            = [["status", "ASCENDING"], ["last_seen_ms", "DESCENDING"]]
    profiles_newest_buyers     = [["status", "ASCENDING"], ["last_seen_ms", "DESCENDING"], ["counters.orders", "DESCENDING"]]
    profiles_newest_by_source  = [["first_touch.attribution.source", "ASCENDING"], ["last_seen_ms", "DESCENDING"]]
    profiles_newest_by_medium  = [["first_touch.attribution.medium", "ASCENDING"], ["last_seen_ms", "DESCENDING"]]
    profiles_newest_by_camp    = [["first_touch.attribution.campaign", "ASCENDING"], ["last_seen_ms", "DESCENDING"]]
    profiles_newest_by_channel = [["first_touch.channel", "ASCENDING"], ["last_seen_ms", "DESCENDING"]]
  }
}

resource "google_firestore_index" "journal" {
  for_each = local.journal_indexes

  project     = var.project_id
  database    = google_firestore_database.main.name
  collection  = "profiles"
  query_scope = "COLLECTION"

  dynamic "fields" {
    for_each = each.value
    content {
      field_path = fields.value[0]
      order      = fields.value[1]
    }
  }
}

# Search by name: equality on the name traits (the traits map itself stays unindexed).
resource "google_firestore_field" "journal_name_search" {
  for_each = toset(["traits.first_name.value", "traits.last_name.value", "traits.name.value"])

  project    = var.project_id
  database   = google_firestore_database.main.name
  collection = "profiles"
  field      = each.value

  index_config {
    indexes {
      order = "ASCENDING"
    }
  }
}
