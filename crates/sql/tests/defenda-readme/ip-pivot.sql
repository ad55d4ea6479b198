SELECT
    utctimestamp,
    summary,
    source,
    details,
    tags
FROM defenda_data_lake.events
    where
        source ='cloudtrail'
    AND json_array_contains(json_extract(details,'$._ipaddresses'),'7.1.14.12')
    AND year='2020'
    AND month='09'
    AND day='07'
    AND hour='18'
    LIMIT 100;
