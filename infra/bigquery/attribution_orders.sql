-- attribution_orders: one row per order, credited as `svyaz report attribution` credits it,
-- computed from the warehouse's touch history (so it holds for histories Firestore queries
-- outgrow). The same SQL runs in BigQuery (the view of infra/bigquery.tf) and in DuckDB (the
-- test that compares it with the report); only ${touchpoints} and ${profile_updates} differ.
--
-- * Rows arrive at least once: one row per touchpoint, the latest event of it (an order's status
--   updates replace it, as in the store: the later event time wins).
-- * A merged-away profile's touches belong to the profile it was merged into (merges from
--   profile_updates, followed along chains); erased customers are left out (their rows are
--   deleted by the daily erasure query, docs/warehouse.md).
-- * First touch: the customer's earliest touch with an ad source, at or before the order.
--   Last touch: the latest touch with a non-direct source in the 90 days up to the order
--   (attribution_lookback_days of the default policy).
WITH RECURSIVE
merges AS (
  SELECT DISTINCT loser, u.profile_id AS survivor
  FROM ${profile_updates} AS u
  CROSS JOIN UNNEST(u.merged_profile_ids) AS loser
  WHERE u.status = 'merged' AND u.profile_id IS NOT NULL
),
chains AS (
  SELECT loser AS profile_id, survivor AS root, 1 AS hops FROM merges
  UNION ALL
  SELECT c.profile_id, m.survivor AS root, c.hops + 1 AS hops
  FROM chains AS c
  JOIN merges AS m ON m.loser = c.root
  WHERE c.hops < 64
),
roots AS (
  SELECT profile_id, root
  FROM chains
  WHERE TRUE
  QUALIFY ROW_NUMBER() OVER (PARTITION BY profile_id ORDER BY hops DESC) = 1
),
erased AS (
  SELECT DISTINCT erased_id
  FROM ${profile_updates} AS u
  CROSS JOIN UNNEST(u.profile_ids) AS erased_id
  WHERE u.status = 'erased'
),
latest AS (
  SELECT *
  FROM ${touchpoints}
  WHERE TRUE
  QUALIFY ROW_NUMBER() OVER (PARTITION BY touchpoint ORDER BY occurred_at DESC, publish_time DESC) = 1
),
touches AS (
  SELECT
    COALESCE(r.root, t.profile_id) AS customer,
    t.touchpoint, t.type, t.channel, t.occurred_at,
    NULLIF(t.source, '') AS source, NULLIF(t.medium, '') AS medium, NULLIF(t.campaign, '') AS campaign,
    COALESCE(t.source, t.medium, t.campaign, t.content, t.term) IS NOT NULL AS attributed,
    t.order_id, t.amount, t.currency, t.order_status
  FROM latest AS t
  LEFT JOIN roots AS r ON r.profile_id = t.profile_id
  WHERE t.profile_id NOT IN (SELECT erased_id FROM erased)
    AND COALESCE(r.root, t.profile_id) NOT IN (SELECT erased_id FROM erased)
),
orders AS (
  SELECT * FROM touches WHERE type = 'order'
),
first_credit AS (
  SELECT o.touchpoint, a.source, a.medium, a.campaign
  FROM orders AS o
  JOIN touches AS a ON a.customer = o.customer AND a.attributed AND a.occurred_at <= o.occurred_at
  WHERE TRUE
  QUALIFY ROW_NUMBER() OVER (PARTITION BY o.touchpoint ORDER BY a.occurred_at ASC) = 1
),
last_credit AS (
  SELECT o.touchpoint, a.source, a.medium, a.campaign
  FROM orders AS o
  JOIN touches AS a
    ON a.customer = o.customer
    AND a.attributed
    AND a.occurred_at <= o.occurred_at
    AND a.occurred_at >= o.occurred_at - INTERVAL 90 DAY
  WHERE LOWER(COALESCE(a.source, '')) NOT IN ('', 'direct', '(direct)', 'none', '(none)')
  QUALIFY ROW_NUMBER() OVER (PARTITION BY o.touchpoint ORDER BY a.occurred_at DESC) = 1
)
SELECT
  o.touchpoint AS order_key,
  o.order_id,
  o.customer AS profile_id,
  o.occurred_at AS ordered_at,
  o.channel,
  o.channel IN ('crm', 'store') AS offline,
  o.order_status AS status,
  COALESCE(o.order_status, '') NOT IN ('cancelled', 'refunded') AS counted,
  COALESCE(o.amount, 0) AS amount,
  COALESCE(o.currency, 'RUB') AS currency,
  f.source AS first_source, f.medium AS first_medium, f.campaign AS first_campaign,
  l.source AS last_source, l.medium AS last_medium, l.campaign AS last_campaign
FROM orders AS o
LEFT JOIN first_credit AS f ON f.touchpoint = o.touchpoint
LEFT JOIN last_credit AS l ON l.touchpoint = o.touchpoint
