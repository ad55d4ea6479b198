# Alarms for the ways events or alerts can go missing: a failing function, Firehose failing to
# deliver, records the transform or s3-ingest could not process, alert deliveries given up on,
# and a detection rule failing run after run. One alarm resource, one entry per alarm.
#
# The functions print their metrics as CloudWatch Embedded Metric Format lines (crates/metrics
# lists every one; docs/operations.md describes them); CloudWatch Logs turns those lines into
# metrics in the namespace below, with no metric filter and no API call from the functions.
# crates/terraform-checks fails when an alarm names a metric or dimension the Rust code does
# not emit.

locals {
  metrics_namespace = "Lakewatch"

  # The detector's interval in seconds, from a rate(...) schedule; an hour for cron schedules.
  detector_rate = regex("^(?:rate\\((?P<count>\\d+) (?P<unit>minutes?|hours?|days?)\\))?", var.detector_schedule)
  detector_period_seconds = local.detector_rate.count == null ? 3600 : tonumber(local.detector_rate.count) * lookup(
    { minute = 60, minutes = 60, hour = 3600, hours = 3600, day = 86400, days = 86400 },
    local.detector_rate.unit,
  )

  alarms = merge(
    {
      for job, function in aws_lambda_function.this : "${job}-errors" => {
        description = "lakewatch ${job} returned errors"
        namespace   = "AWS/Lambda"
        metric      = "Errors"
        dimensions  = { FunctionName = function.function_name }
        statistic   = "Sum"
        comparison  = "GreaterThanThreshold"
        threshold   = 0
      }
    },
    {
      firehose-delivery-to-s3 = {
        description = "Firehose failed to deliver events to the lake bucket"
        namespace   = "AWS/Firehose"
        metric      = "DeliveryToS3.Success"
        dimensions  = { DeliveryStreamName = aws_kinesis_firehose_delivery_stream.events.name }
        statistic   = "Minimum"
        comparison  = "LessThanThreshold"
        threshold   = 1
      }
      transform-records-failed = {
        description = "The Firehose transform answered ProcessingFailed for some records (their data is under errors/firehose/ in the lake bucket)"
        namespace   = local.metrics_namespace
        metric      = "RecordsFailed"
        dimensions  = { Function = "firehose-transform" }
        statistic   = "Sum"
        comparison  = "GreaterThanThreshold"
        threshold   = 0
      }
      s3-ingest-records-failed = {
        description = "s3-ingest could not frame some records of an object (they are under errors/s3-ingest/ in the lake bucket)"
        namespace   = local.metrics_namespace
        metric      = "RecordsFailed"
        dimensions  = { Function = "s3-ingest" }
        statistic   = "Sum"
        comparison  = "GreaterThanThreshold"
        threshold   = 0
      }
    },
    # A for expression rather than a conditional: the entries differ in shape (period, runs).
    { for name, alarm in {
      alert-deliveries-failed = {
        description = "Alert deliveries were given up on after their retries; they stay in the outbox with the reason"
        namespace   = local.metrics_namespace
        metric      = "AlertDeliveriesFailed"
        dimensions  = {}
        statistic   = "Sum"
        comparison  = "GreaterThanThreshold"
        threshold   = 0
      }
      detector-rule-failures = {
        description = "Detection rules failed in ${var.rule_failure_runs} detector runs in a row (RuleFailed by Rule says which)"
        namespace   = local.metrics_namespace
        metric      = "RulesFailed"
        dimensions  = {}
        statistic   = "Maximum"
        comparison  = "GreaterThanThreshold"
        threshold   = 0
        period      = local.detector_period_seconds
        runs        = var.rule_failure_runs
      }
    } : name => alarm if var.enable_detector },
  )
}

resource "aws_cloudwatch_metric_alarm" "this" {
  for_each = local.alarms

  alarm_name          = "${var.name}-${each.key}"
  alarm_description   = each.value.description
  namespace           = each.value.namespace
  metric_name         = each.value.metric
  dimensions          = each.value.dimensions
  statistic           = each.value.statistic
  period              = try(each.value.period, 300)
  evaluation_periods  = try(each.value.runs, 1)
  datapoints_to_alarm = try(each.value.runs, 1)
  threshold           = each.value.threshold
  comparison_operator = each.value.comparison
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  tags                = local.tags
}
