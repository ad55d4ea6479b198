# The Glue tables Athena queries. Their columns mirror lakewatch_lake::schema (crates/lake/src/schema.rs);
# crates/terraform-checks fails when the two drift apart.

locals {
  table_columns = {
    events = [
      { name = "utctimestamp", type = "string", comment = "event time, YYYY-MM-DDTHH:MM:SS.ffffffZ" },
      { name = "receivedtimestamp", type = "string", comment = "when the pipeline processed the event" },
      { name = "eventid", type = "string", comment = "unique, deterministic event id" },
      { name = "summary", type = "string", comment = "human-readable one-line summary" },
      { name = "category", type = "string", comment = "e.g. authentication, network, syslog" },
      { name = "source", type = "string", comment = "e.g. cloudtrail, gsuite, syslog, vpcflow" },
      { name = "hostname", type = "string", comment = "host the event is about, may be empty" },
      { name = "severity", type = "string", comment = "upper case, INFO by default" },
      { name = "tags", type = "array<string>", comment = "de-duplicated tags" },
      { name = "plugins", type = "array<string>", comment = "plugins that changed the event, in run order" },
      { name = "details", type = "string", comment = "the source's own fields as JSON text" },
    ]
    alerts = [
      { name = "utctimestamp", type = "string", comment = "time of the alert, YYYY-MM-DDTHH:MM:SS.ffffffZ" },
      { name = "alertid", type = "string", comment = "deterministic from rule, de-duplication key and window" },
      { name = "rule", type = "string", comment = "id of the rule that fired" },
      { name = "severity", type = "string", comment = "upper case" },
      { name = "summary", type = "string", comment = "human-readable one-line summary" },
      { name = "windowstart", type = "string", comment = "start of the evaluated window" },
      { name = "windowend", type = "string", comment = "end of the evaluated window" },
      { name = "eventids", type = "array<string>", comment = "ids of the events behind the alert" },
      { name = "details", type = "string", comment = "the rule's output row as JSON text" },
    ]
  }

  partition_keys = ["year", "month", "day", "hour"]

  # Partition projection computes partitions from the path instead of the catalog: no generator
  # needed, at the price of Athena trusting that every projected hour exists.
  projection_parameters = {
    "projection.enabled"      = "true"
    "projection.year.type"    = "integer"
    "projection.year.range"   = "2000,2100"
    "projection.month.type"   = "integer"
    "projection.month.range"  = "1,12"
    "projection.month.digits" = "2"
    "projection.day.type"     = "integer"
    "projection.day.range"    = "1,31"
    "projection.day.digits"   = "2"
    "projection.hour.type"    = "integer"
    "projection.hour.range"   = "0,23"
    "projection.hour.digits"  = "2"
  }
}

resource "aws_glue_catalog_database" "this" {
  name        = local.glue_database_name
  description = "lakewatch ${var.name}: events and alerts"
}

# Every Glue table: the lake's (local.table_columns, each under its own prefix, projected when
# enable_partition_projection says so) and the detection extract, `events_extract`: the events
# again, each under the quarter hour of its own time wherever the lake stored it (a Firehose
# record spanning hours, a late arrival). Only the detector writes the extract
# (lakewatch_lake::schema::EXTRACT, docs/detection.md), and its rules read it instead of events;
# it is always projected: no partition to keep in the catalog for a table nothing else writes,
# and Athena lists only the quarters a query's predicates name (a 15-minute window reads one or
# two quarters, not the hour). Its objects are zstd (`.json.zst`; those extracted before
# lakewatch wrote zstd stay gzip, `.json.gz`): Athena picks each file's codec by its extension,
# so both read, and `compressionType` only tells other Glue clients what new files hold.
locals {
  glue_tables = merge(
    {
      for name, columns in local.table_columns : name => {
        columns     = columns
        prefix      = "${name}/"
        projected   = var.enable_partition_projection
        quarters    = false
        compression = "gzip"
        description = "lakewatch ${name}: gzip NDJSON in hourly partitions"
      }
    },
    {
      events_extract = {
        columns     = local.table_columns.events
        prefix      = "${local.extract_prefix}events/"
        projected   = true
        quarters    = true
        compression = "zstd"
        description = "lakewatch detection extract: the events by the quarter hour of their own time, zstd NDJSON"
      }
    },
  )
}

resource "aws_glue_catalog_table" "this" {
  for_each = local.glue_tables

  name          = each.key
  database_name = aws_glue_catalog_database.this.name
  table_type    = "EXTERNAL_TABLE"
  description   = each.value.description

  parameters = merge(
    {
      EXTERNAL        = "TRUE"
      classification  = "json"
      compressionType = each.value.compression
    },
    each.value.projected && !each.value.quarters ? merge(local.projection_parameters, {
      "storage.location.template" = "s3://${module.lake_bucket.id}/${each.value.prefix}year=$${year}/month=$${month}/day=$${day}/hour=$${hour}/"
    }) : {},
    each.value.quarters ? merge(local.projection_parameters, {
      "projection.minute.type"    = "enum"
      "projection.minute.values"  = "00,15,30,45"
      "storage.location.template" = "s3://${module.lake_bucket.id}/${each.value.prefix}year=$${year}/month=$${month}/day=$${day}/hour=$${hour}/minute=$${minute}/"
    }) : {},
  )

  dynamic "partition_keys" {
    for_each = each.value.quarters ? concat(local.partition_keys, ["minute"]) : local.partition_keys
    content {
      name = partition_keys.value
      type = "string"
    }
  }

  storage_descriptor {
    location      = "s3://${module.lake_bucket.id}/${each.value.prefix}"
    input_format  = "org.apache.hadoop.mapred.TextInputFormat"
    output_format = "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat"
    compressed    = true

    ser_de_info {
      name                  = "json"
      serialization_library = "org.openx.data.jsonserde.JsonSerDe"
      parameters = {
        "ignore.malformed.json" = "true"
        "case.insensitive"      = "false"
      }
    }

    dynamic "columns" {
      for_each = each.value.columns
      content {
        name    = columns.value.name
        type    = columns.value.type
        comment = columns.value.comment
      }
    }
  }
}
