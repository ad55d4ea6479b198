# Least privilege, one policy per function: named actions only (no "*" and no "s3:*"), on the
# resources of this deployment only.

locals {
  lake_arn           = module.lake_bucket.arn
  input_arn          = module.input_bucket.arn
  athena_results_arn = module.athena_results_bucket.arn
  glue_catalog_arn   = "arn:${local.partition}:glue:${local.region}:${local.account_id}:catalog"
  glue_database_arn  = "arn:${local.partition}:glue:${local.region}:${local.account_id}:database/${aws_glue_catalog_database.this.name}"
  glue_tables_arn    = "arn:${local.partition}:glue:${local.region}:${local.account_id}:table/${aws_glue_catalog_database.this.name}/*"

  # The bucket a scheduled pull reads from AWS S3 with the function's own role (no secret, no
  # other endpoint), as a list of zero or one.
  pulled_with_own_role = var.s3_pull != null && try(var.s3_pull.secret_arn, null) == null && try(var.s3_pull.endpoint_url, null) == null ? [var.s3_pull.bucket] : []

  function_policies = {
    firehose-transform = data.aws_iam_policy_document.firehose_transform.json
    s3-ingest          = data.aws_iam_policy_document.s3_ingest.json
    partitions         = data.aws_iam_policy_document.partitions.json
    detector           = data.aws_iam_policy_document.detector.json
  }
}

# What every function needs: its own log group, the deployment's key (Lambda decrypts the
# function's environment with the function's role), and, for the asynchronously invoked ones,
# their dead-letter queue.
data "aws_iam_policy_document" "baseline" {
  # Every function's, deployed or not: the specific documents below are always evaluated.
  for_each = toset(["firehose-transform", "s3-ingest", "partitions", "detector"])

  statement {
    sid       = "WriteOwnLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:/aws/lambda/${var.name}-${each.key}:*"]
  }
  statement {
    sid       = "UseTheDeploymentKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [aws_kms_key.this.arn]
  }
  dynamic "statement" {
    for_each = each.key == "firehose-transform" ? [] : [aws_sqs_queue.dead_letters.arn]
    content {
      sid       = "SendToDeadLetterQueue"
      actions   = ["sqs:SendMessage"]
      resources = [statement.value]
    }
  }
}

data "aws_iam_policy_document" "s3_ingest" {
  source_policy_documents = [data.aws_iam_policy_document.baseline["s3-ingest"].json]
  statement {
    sid       = "ReadInputObjects"
    actions   = ["s3:GetObject", "s3:GetObjectVersion"]
    resources = ["${local.input_arn}/*"]
  }
  statement {
    sid       = "SendRecordsToFirehose"
    actions   = ["firehose:PutRecordBatch", "firehose:PutRecord"]
    resources = [local.firehose_stream_arn]
  }
  statement {
    sid     = "WriteUnframeableRecordsAndCursor"
    actions = ["s3:PutObject", "s3:GetObject"]
    resources = [
      "${local.lake_arn}/${local.errors_prefix}s3-ingest/*",
      "${local.lake_arn}/${local.state_prefix}s3-ingest/*",
    ]
  }
  statement {
    # Replaying the records the transform failed (docs/s3-ingest.md, "Replaying failed records").
    sid       = "ReadProcessingFailedRecords"
    actions   = ["s3:GetObject", "s3:GetObjectVersion"]
    resources = ["${local.lake_arn}/${local.errors_prefix}firehose/processing-failed/*"]
  }
  statement {
    # Without it S3 answers 403 instead of 404 for a cursor that does not exist yet.
    sid       = "FindTheCursor"
    actions   = ["s3:ListBucket"]
    resources = [local.lake_arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${local.state_prefix}s3-ingest/*"]
    }
  }
  # A scheduled pull from an AWS bucket with the function's own role (no secret, no endpoint).
  dynamic "statement" {
    for_each = local.pulled_with_own_role
    content {
      sid       = "ListPulledBucket"
      actions   = ["s3:ListBucket"]
      resources = ["arn:${local.partition}:s3:::${statement.value}"]
    }
  }
  dynamic "statement" {
    for_each = local.pulled_with_own_role
    content {
      sid       = "ReadPulledObjects"
      actions   = ["s3:GetObject"]
      resources = ["arn:${local.partition}:s3:::${statement.value}/*"]
    }
  }
  dynamic "statement" {
    for_each = var.s3_pull != null && try(var.s3_pull.secret_arn, null) != null ? [var.s3_pull.secret_arn] : []
    content {
      sid       = "ReadPullCredentials"
      actions   = ["secretsmanager:GetSecretValue"]
      resources = [statement.value]
    }
  }
}

data "aws_iam_policy_document" "partitions" {
  source_policy_documents = [data.aws_iam_policy_document.baseline["partitions"].json]
  statement {
    sid       = "ListLakePartitions"
    actions   = ["s3:ListBucket"]
    resources = [local.lake_arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${local.events_prefix}*", "${local.alerts_prefix}*", "events", "alerts"]
    }
  }
  statement {
    sid       = "AddGluePartitions"
    actions   = ["glue:GetTable", "glue:GetPartition", "glue:GetPartitions", "glue:BatchCreatePartition"]
    resources = [local.glue_catalog_arn, local.glue_database_arn, local.glue_tables_arn]
  }
}

data "aws_iam_policy_document" "firehose_transform" {
  source_policy_documents = [data.aws_iam_policy_document.baseline["firehose-transform"].json]
  statement {
    sid       = "ReadTheSources"
    actions   = ["s3:GetObject"]
    resources = ["${local.lake_arn}/${local.content_prefix}sources.json"]
  }
}

data "aws_iam_policy_document" "detector" {
  source_policy_documents = [data.aws_iam_policy_document.baseline["detector"].json]
  statement {
    sid       = "ReadTheRules"
    actions   = ["s3:GetObject"]
    resources = ["${local.lake_arn}/${local.content_prefix}rules.json"]
  }
  statement {
    sid       = "RunQueriesInTheWorkgroup"
    actions   = ["athena:StartQueryExecution", "athena:GetQueryExecution", "athena:GetQueryResults", "athena:StopQueryExecution"]
    resources = [aws_athena_workgroup.this.arn]
  }
  statement {
    sid       = "ReadTableDefinitions"
    actions   = ["glue:GetDatabase", "glue:GetTable", "glue:GetPartition", "glue:GetPartitions"]
    resources = [local.glue_catalog_arn, local.glue_database_arn, local.glue_tables_arn]
  }
  statement {
    sid       = "ListTheLake"
    actions   = ["s3:ListBucket", "s3:GetBucketLocation"]
    resources = [local.lake_arn]
  }
  statement {
    sid       = "ReadEventsAndAlerts"
    actions   = ["s3:GetObject"]
    resources = ["${local.lake_arn}/${local.events_prefix}*", "${local.lake_arn}/${local.alerts_prefix}*"]
  }
  # The extract pass writes each new event object's events under their own hours; the rules'
  # Athena queries read them back with the detector's credentials.
  statement {
    sid       = "WriteAndReadTheExtract"
    actions   = ["s3:PutObject", "s3:GetObject"]
    resources = ["${local.lake_arn}/${local.extract_prefix}*"]
  }
  statement {
    sid     = "WriteAlertsAndWatermarks"
    actions = ["s3:PutObject", "s3:GetObject"]
    resources = [
      "${local.lake_arn}/${local.alerts_prefix}*",
      "${local.lake_arn}/${local.state_prefix}detector/*",
    ]
  }
  # What Athena documents for running queries of a workgroup with a results location: large
  # results are written as multipart uploads, which it lists and aborts.
  statement {
    sid       = "ListQueryResults"
    actions   = ["s3:ListBucket", "s3:GetBucketLocation", "s3:ListBucketMultipartUploads"]
    resources = [local.athena_results_arn]
  }
  statement {
    sid       = "WriteQueryResults"
    actions   = ["s3:PutObject", "s3:GetObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"]
    resources = ["${local.athena_results_arn}/*"]
  }
  statement {
    sid       = "PublishAlerts"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.alerts.arn]
  }
  # Silence rules read the transform's Lakewatch/Events metric by Source. GetMetricData takes
  # no resource scoping (AWS documents only "*" for it); it reads metrics and nothing else.
  statement {
    sid       = "ReadSourceEventCounts"
    actions   = ["cloudwatch:GetMetricData"]
    resources = ["*"]
  }
  # The destinations' secrets (webhook URLs, signing keys, routing keys): exactly those listed.
  dynamic "statement" {
    for_each = length(var.alert_destination_secret_arns) > 0 ? [1] : []
    content {
      sid       = "ReadDestinationSecrets"
      actions   = ["secretsmanager:GetSecretValue"]
      resources = var.alert_destination_secret_arns
    }
  }
  dynamic "statement" {
    for_each = length(var.alert_destination_secret_kms_key_arns) > 0 ? [1] : []
    content {
      sid       = "DecryptDestinationSecrets"
      actions   = ["kms:Decrypt"]
      resources = var.alert_destination_secret_kms_key_arns
      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["secretsmanager.${local.region}.amazonaws.com"]
      }
    }
  }
}

# Firehose's own role: deliver to the lake, invoke the transform's alias, log delivery errors.
resource "aws_iam_role" "firehose" {
  name               = "${var.name}-firehose"
  assume_role_policy = data.aws_iam_policy_document.firehose_assume.json
  tags               = local.tags
}

data "aws_iam_policy_document" "firehose_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["firehose.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "sts:ExternalId"
      values   = [local.account_id]
    }
  }
}

data "aws_iam_policy_document" "firehose" {
  statement {
    sid = "DeliverToTheLake"
    actions = [
      "s3:AbortMultipartUpload", "s3:GetBucketLocation", "s3:GetObject", "s3:ListBucket",
      "s3:ListBucketMultipartUploads", "s3:PutObject",
    ]
    resources = [local.lake_arn, "${local.lake_arn}/*"]
  }
  statement {
    sid       = "InvokeTheTransform"
    actions   = ["lambda:InvokeFunction", "lambda:GetFunctionConfiguration"]
    resources = [aws_lambda_alias.live["firehose-transform"].arn]
  }
  statement {
    sid       = "LogDeliveryErrors"
    actions   = ["logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.firehose.arn}:*"]
  }
  statement {
    sid       = "UseTheDeploymentKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [aws_kms_key.this.arn]
  }
}

resource "aws_iam_role_policy" "firehose" {
  name   = "${var.name}-firehose"
  role   = aws_iam_role.firehose.id
  policy = data.aws_iam_policy_document.firehose.json
}
