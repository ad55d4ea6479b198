data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  # `id` is the region's name in provider 5 and 6 alike; provider 6 deprecates `name`.
  region = data.aws_region.current.id

  tags = merge({ "lakewatch:deployment" = var.name }, var.tags)

  # The Lambda functions this module deploys. The detector is opt-in until its package exists;
  # the partition generator is left out when partition projection replaces it.
  functions = merge(
    {
      firehose-transform = { description = "Runs the lakewatch pipeline on each Firehose record" }
      s3-ingest          = { description = "Sends every record of new input objects to Firehose" }
    },
    var.enable_partition_projection ? {} : {
      partitions = { description = "Keeps the Glue partitions of events and alerts complete" }
    },
    var.enable_detector ? {
      detector = { description = "Runs the detection rules over time windows and writes alerts" }
    } : {},
  )

  events_prefix      = "events/"
  extract_prefix     = "extract/"
  alerts_prefix      = "alerts/"
  errors_prefix      = "errors/"
  state_prefix       = "state/"
  glue_database_name = replace(var.name, "-", "_")

  # The stream's name and ARN are known before it exists: the s3-ingest function's environment
  # and policy use them, while the stream needs the transform function's alias. Referring to
  # the stream resource from a function would make a dependency cycle, since all functions are
  # one resource.
  firehose_stream_name = "${var.name}-events"
  firehose_stream_arn  = "arn:${local.partition}:firehose:${local.region}:${local.account_id}:deliverystream/${local.firehose_stream_name}"
}
