# EventBridge schedules for the periodic functions, and the S3 notification that feeds s3-ingest.

locals {
  schedules = merge(
    var.enable_partition_projection ? {} : {
      partitions = { expression = var.partition_schedule, input = null }
    },
    var.enable_detector ? {
      detector = { expression = var.detector_schedule, input = null }
    } : {},
    var.s3_pull == null ? {} : {
      s3-ingest = {
        expression = var.s3_pull.schedule
        input = jsonencode({
          pull = {
            endpoint_url  = var.s3_pull.endpoint_url
            bucket        = var.s3_pull.bucket
            prefix        = var.s3_pull.prefix
            secret_arn    = var.s3_pull.secret_arn
            lookback_days = var.s3_pull.lookback_days
          }
        })
      }
    },
  )
}

resource "aws_cloudwatch_event_rule" "schedule" {
  for_each = local.schedules

  name                = "${var.name}-${each.key}"
  description         = "Runs lakewatch ${each.key} on a schedule"
  schedule_expression = each.value.expression
  tags                = local.tags
}

resource "aws_cloudwatch_event_target" "schedule" {
  for_each = local.schedules

  rule  = aws_cloudwatch_event_rule.schedule[each.key].name
  arn   = aws_lambda_alias.live[each.key].arn
  input = each.value.input
}

resource "aws_lambda_permission" "schedule" {
  for_each = local.schedules

  statement_id  = "AllowEventBridgeSchedule"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.this[each.key].function_name
  qualifier     = aws_lambda_alias.live[each.key].name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.schedule[each.key].arn
}

resource "aws_lambda_permission" "input_bucket" {
  statement_id   = "AllowInputBucketNotifications"
  action         = "lambda:InvokeFunction"
  function_name  = aws_lambda_function.this["s3-ingest"].function_name
  qualifier      = aws_lambda_alias.live["s3-ingest"].name
  principal      = "s3.amazonaws.com"
  source_arn     = module.input_bucket.arn
  source_account = local.account_id
}

resource "aws_s3_bucket_notification" "input" {
  bucket = module.input_bucket.id

  lambda_function {
    lambda_function_arn = aws_lambda_alias.live["s3-ingest"].arn
    events              = ["s3:ObjectCreated:*"]
  }

  depends_on = [aws_lambda_permission.input_bucket]
}
