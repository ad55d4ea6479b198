-- AWS console logins (CloudTrail ConsoleLogin events), newest first.
-- param from = 0000-00-00T00: first hour partition to read, YYYY-MM-DDTHH (UTC)
-- param to = 9999-99-99T99: last hour partition to read, YYYY-MM-DDTHH (UTC)
SELECT utctimestamp,
       summary,
       json_extract_scalar(details, '$.useridentity.arn') AS identity,
       json_extract_scalar(details, '$.sourceipaddress') AS sourceipaddress,
       json_extract_scalar(details, '$.responseelements.consolelogin') AS result
FROM events
WHERE source = 'cloudtrail'
  AND json_extract_scalar(details, '$.eventname') = 'ConsoleLogin'
  AND year || '-' || month || '-' || day || 'T' || hour BETWEEN '${from}' AND '${to}'
ORDER BY utctimestamp DESC
