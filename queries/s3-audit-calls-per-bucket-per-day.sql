-- Storage audit: API calls per bucket per day (the dashboard's daily calls panel).
-- param from = 0000-00-00T00: first hour partition to read, YYYY-MM-DDTHH (UTC)
-- param to = 9999-99-99T99: last hour partition to read, YYYY-MM-DDTHH (UTC)
SELECT year || '-' || month || '-' || day AS date,
       json_extract_scalar(details, '$.api.bucket') AS bucket,
       count(*) AS calls
FROM events
WHERE source = 's3-audit'
  AND year || '-' || month || '-' || day || 'T' || hour BETWEEN '${from}' AND '${to}'
GROUP BY 1, 2
ORDER BY 1, calls DESC, 2
