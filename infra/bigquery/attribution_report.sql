-- The attribution report over the attribution_orders view: what `svyaz report attribution`
-- prints, for orders with @start <= ordered_at < @end, credited by @by ('first_touch' or
-- 'last_touch'), split offline (channel crm / store) and online, per currency.
-- bq query --use_legacy_sql=false --parameter=start:TIMESTAMP:'2026-11-01 00:00:00+00' \
--   --parameter=end:TIMESTAMP:'2026-12-01 00:00:00+00' --parameter=by::first_touch < attribution_report.sql
WITH credited AS (
  SELECT
    CASE WHEN @by = 'last_touch' THEN last_source ELSE first_source END AS src,
    CASE WHEN @by = 'last_touch' THEN last_medium ELSE first_medium END AS med,
    CASE WHEN @by = 'last_touch' THEN last_campaign ELSE first_campaign END AS camp,
    currency, offline, counted, amount
  FROM ${attribution_orders}
  WHERE ordered_at >= @start AND ordered_at < @end
)
SELECT
  COALESCE(src, '(none)') AS source,
  COALESCE(med, CASE WHEN src IS NULL THEN '(none)' ELSE '' END) AS medium,
  COALESCE(camp, '') AS campaign,
  currency,
  SUM(CASE WHEN offline THEN 1 ELSE 0 END) AS offline_orders,
  SUM(CASE WHEN offline THEN amount ELSE 0 END) AS offline_revenue,
  SUM(CASE WHEN offline THEN 0 ELSE 1 END) AS online_orders,
  SUM(CASE WHEN offline THEN 0 ELSE amount END) AS online_revenue
FROM credited
WHERE counted
GROUP BY 1, 2, 3, 4
ORDER BY currency, offline_revenue + online_revenue DESC, source, medium, campaign
