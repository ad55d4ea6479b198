# One Lambda function per job, each with its own role, log group and a published alias. Packages
# are the arm64 (or x86_64) `provided.al2023` zips built by `scripts/build-lambdas`, found at
# `<var.lambda_dist_dir>/<function>/bootstrap.zip`.

locals {
  function_environment = {
    # The ASN database is optional: without it the variable is left out, not set empty.
    firehose-transform = merge(
      local.content_environment["sources"],
      var.geoip == null ? {} : { LAKEWATCH_GEOIP_CITY_DATABASE = var.geoip.city_database_path },
      try(var.geoip.asn_database_path, null) == null ? {} : { LAKEWATCH_GEOIP_ASN_DATABASE = var.geoip.asn_database_path },
    )
    s3-ingest = {
      LAKEWATCH_FIREHOSE_STREAM = local.firehose_stream_name
      LAKEWATCH_ERROR_BUCKET    = module.lake_bucket.id
      LAKEWATCH_ERROR_PREFIX    = "${local.errors_prefix}s3-ingest/"
      LAKEWATCH_STATE_BUCKET    = module.lake_bucket.id
      LAKEWATCH_STATE_PREFIX    = "${local.state_prefix}s3-ingest/"
    }
    partitions = {
      LAKEWATCH_LAKE_BUCKET    = module.lake_bucket.id
      LAKEWATCH_GLUE_DATABASE  = aws_glue_catalog_database.this.name
      LAKEWATCH_LOOKBACK_HOURS = tostring(var.partition_lookback_hours)
    }
    # Without a destinations file the detector delivers every alert to the alerts topic.
    detector = merge(
      local.content_environment["rules"],
      {
        LAKEWATCH_LAKE_BUCKET      = module.lake_bucket.id
        LAKEWATCH_GLUE_DATABASE    = aws_glue_catalog_database.this.name
        LAKEWATCH_ATHENA_WORKGROUP = aws_athena_workgroup.this.name
        LAKEWATCH_STATE_PREFIX     = "${local.state_prefix}detector/"
        LAKEWATCH_EXTRACT_TABLE    = aws_glue_catalog_table.this["events_extract"].name
        LAKEWATCH_ALERTS_TOPIC_ARN = aws_sns_topic.alerts.arn
      },
      var.alert_destinations == null ? {} : { LAKEWATCH_DESTINATIONS = var.alert_destinations },
    )
  }

  # Functions invoked asynchronously get a dead-letter queue and an on-failure destination.
  asynchronous_functions = setsubtract(keys(local.functions), ["firehose-transform"])
}

resource "aws_iam_role" "function" {
  for_each = local.functions

  name               = "${var.name}-${each.key}"
  description        = "lakewatch ${each.key}: only what this function needs"
  assume_role_policy = data.aws_iam_policy_document.lambda_assume.json
  tags               = local.tags
}

data "aws_iam_policy_document" "lambda_assume" {
  statement {
    effect  = "Allow"
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role_policy" "function" {
  for_each = local.functions

  name   = "${var.name}-${each.key}"
  role   = aws_iam_role.function[each.key].id
  policy = local.function_policies[each.key]
}

resource "aws_cloudwatch_log_group" "function" {
  for_each = local.functions

  name              = "/aws/lambda/${var.name}-${each.key}"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.this.arn
  tags              = local.tags
}

resource "aws_lambda_function" "this" {
  # checkov:skip=CKV_AWS_117:The functions call only AWS APIs; a VPC adds NAT cost and no protection here.
  # checkov:skip=CKV_AWS_272:Code signing needs a signing profile the deployer owns; packages are built from source.
  # checkov:skip=CKV_AWS_50:X-Ray needs Resource "*" permissions; each function logs one structured summary line instead.
  # checkov:skip=CKV_AWS_116:The synchronous Firehose transform has no dead-letter queue; the asynchronous functions have one (see dynamic block).
  for_each = local.functions

  function_name                  = "${var.name}-${each.key}"
  description                    = each.value.description
  role                           = aws_iam_role.function[each.key].arn
  filename                       = "${var.lambda_dist_dir}/${each.key}/bootstrap.zip"
  source_code_hash               = filebase64sha256("${var.lambda_dist_dir}/${each.key}/bootstrap.zip")
  runtime                        = "provided.al2023"
  handler                        = "bootstrap"
  architectures                  = [var.lambda_architecture]
  memory_size                    = var.lambda_memory_mb[replace(each.key, "-", "_")]
  timeout                        = var.lambda_timeout_seconds[replace(each.key, "-", "_")]
  reserved_concurrent_executions = var.reserved_concurrency[replace(each.key, "-", "_")]
  kms_key_arn                    = aws_kms_key.this.arn
  publish                        = true
  # The GeoIP databases reach the transform as a layer, mounted under /opt.
  layers = each.key == "firehose-transform" && var.geoip != null ? [var.geoip.layer_arn] : []

  environment {
    variables = merge({ RUST_LOG = var.log_level }, local.function_environment[each.key])
  }

  dynamic "dead_letter_config" {
    for_each = contains(local.asynchronous_functions, each.key) ? [1] : []
    content {
      target_arn = aws_sqs_queue.dead_letters.arn
    }
  }

  logging_config {
    log_format = "JSON"
    log_group  = aws_cloudwatch_log_group.function[each.key].name
  }

  tags = local.tags
  # The content is uploaded before a version that reads it is published.
  depends_on = [aws_cloudwatch_log_group.function, aws_iam_role_policy.function, aws_s3_object.content]
}

# Callers (Firehose, S3, EventBridge) always invoke a published version through this alias,
# never $LATEST, so a deploy switches atomically.
resource "aws_lambda_alias" "live" {
  for_each = local.functions

  name             = "live"
  function_name    = aws_lambda_function.this[each.key].function_name
  function_version = aws_lambda_function.this[each.key].version
}

resource "aws_sqs_queue" "dead_letters" {
  name                      = "${var.name}-dead-letters"
  kms_master_key_id         = aws_kms_key.this.arn
  message_retention_seconds = 1209600
  tags                      = local.tags
}

resource "aws_lambda_function_event_invoke_config" "asynchronous" {
  for_each = local.asynchronous_functions

  function_name                = aws_lambda_function.this[each.key].function_name
  qualifier                    = aws_lambda_alias.live[each.key].name
  maximum_retry_attempts       = 2
  maximum_event_age_in_seconds = 6 * 3600

  destination_config {
    on_failure {
      destination = aws_sqs_queue.dead_letters.arn
    }
  }
}
