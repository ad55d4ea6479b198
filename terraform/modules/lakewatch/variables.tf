variable "name" {
  description = "Name of this deployment: prefixes every resource (buckets also get the account and region)."
  type        = string
  default     = "lakewatch"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,24}[a-z0-9]$", var.name))
    error_message = "name must be 3-26 characters of lower-case letters, digits and dashes, starting with a letter (it becomes part of bucket names)."
  }
}

variable "lambda_dist_dir" {
  description = "Directory holding the Lambda packages as <function>/bootstrap.zip, as written by scripts/build-lambdas (default dist/lambda at the repository root)."
  type        = string
}

variable "lambda_architecture" {
  description = "Instruction set the Lambda packages were built for: arm64 (default, cheaper) or x86_64."
  type        = string
  default     = "arm64"

  validation {
    condition     = contains(["arm64", "x86_64"], var.lambda_architecture)
    error_message = "lambda_architecture must be arm64 or x86_64, matching how scripts/build-lambdas built the packages."
  }
}

variable "lambda_memory_mb" {
  description = "Memory of each function in MB. The transform handles 6 MB batches; the ingest streams objects of any size in flat memory."
  type = object({
    firehose_transform = optional(number, 512)
    s3_ingest          = optional(number, 256)
    partitions         = optional(number, 128)
    detector           = optional(number, 256)
  })
  default = {}

  validation {
    condition     = alltrue([for memory in values(var.lambda_memory_mb) : memory >= 128 && memory <= 10240])
    error_message = "Lambda memory must be between 128 and 10240 MB."
  }
}

variable "lambda_timeout_seconds" {
  description = "Timeout of each function in seconds. Firehose allows its transform at most 300 s."
  type = object({
    firehose_transform = optional(number, 120)
    s3_ingest          = optional(number, 900)
    partitions         = optional(number, 300)
    detector           = optional(number, 900)
  })
  default = {}

  validation {
    condition     = var.lambda_timeout_seconds.firehose_transform <= 300 && alltrue([for timeout in values(var.lambda_timeout_seconds) : timeout >= 3 && timeout <= 900])
    error_message = "Timeouts must be 3-900 s, and at most 300 s for the Firehose transform."
  }
}

variable "reserved_concurrency" {
  description = "Reserved concurrent executions per function (null: unreserved, the default). Reserving caps a function's cost and guarantees its capacity, but Lambda refuses a reservation that leaves the account fewer than 100 unreserved executions, so accounts with a small concurrency quota (new accounts often have 10) cannot reserve any. Suggested where the quota allows: firehose_transform 50, s3_ingest 20, partitions 1, detector 1."
  type = object({
    firehose_transform = optional(number)
    s3_ingest          = optional(number)
    partitions         = optional(number)
    detector           = optional(number)
  })
  default = {}

  validation {
    condition     = alltrue([for concurrency in values(var.reserved_concurrency) : concurrency == null || try(concurrency >= 1, false)])
    error_message = "Reserved concurrency must be null (unreserved) or at least 1 (0 would disable the function)."
  }
}

variable "log_level" {
  description = "RUST_LOG filter of the functions (error, warn, info, debug)."
  type        = string
  default     = "info"

  validation {
    condition     = contains(["error", "warn", "info", "debug"], var.log_level)
    error_message = "log_level must be one of error, warn, info, debug (trace would log record contents)."
  }
}

variable "log_retention_days" {
  description = "Retention of the functions' and Firehose's log groups, in days."
  type        = number
  default     = 365

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a retention CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288 or 3653)."
  }
}

variable "firehose_buffering_size_mb" {
  description = "Firehose buffer size before writing an object to the lake, in MB. Dynamic partitioning needs at least 64."
  type        = number
  default     = 64

  validation {
    condition     = var.firehose_buffering_size_mb >= 64 && var.firehose_buffering_size_mb <= 128
    error_message = "With dynamic partitioning Firehose accepts buffer sizes of 64-128 MB."
  }
}

variable "firehose_buffering_interval_seconds" {
  description = "Longest time Firehose buffers before writing, in seconds: the delay before events are queryable (60-900; dynamic partitioning has no zero buffering)."
  type        = number
  default     = 60

  validation {
    condition     = var.firehose_buffering_interval_seconds >= 60 && var.firehose_buffering_interval_seconds <= 900
    error_message = "With dynamic partitioning Firehose accepts buffering intervals of 60-900 seconds (zero buffering is not available)."
  }
}

variable "transform_buffering_size_mb" {
  description = "Size of the batches Firehose hands to the transform Lambda, in MB (0.2-3). Events grow up to about 10x into the lake's shell (raw syslog lines, kept whole in details.raw), and a response over Lambda's 6 MB fails records for size: 0.4 keeps every bundled source under 6 MB with margin."
  type        = number
  default     = 0.4

  validation {
    condition     = var.transform_buffering_size_mb >= 0.2 && var.transform_buffering_size_mb <= 3
    error_message = "transform_buffering_size_mb must be 0.2-3."
  }
}

variable "transform_buffering_interval_seconds" {
  description = "Longest time Firehose buffers records before invoking the transform, in seconds."
  type        = number
  default     = 60

  validation {
    condition     = var.transform_buffering_interval_seconds >= 0 && var.transform_buffering_interval_seconds <= 900
    error_message = "transform_buffering_interval_seconds must be 0-900."
  }
}

variable "lake_retention_days" {
  description = "Days events, alerts and error records are kept in the lake bucket."
  type        = number
  default     = 365

  validation {
    condition     = var.lake_retention_days >= 1
    error_message = "lake_retention_days must be at least 1."
  }
}

variable "input_retention_days" {
  description = "Days objects are kept in the input bucket after they arrive (they are in the lake once ingested)."
  type        = number
  default     = 30

  validation {
    condition     = var.input_retention_days >= 1
    error_message = "input_retention_days must be at least 1."
  }
}

variable "athena_results_retention_days" {
  description = "Days Athena query results are kept."
  type        = number
  default     = 30

  validation {
    condition     = var.athena_results_retention_days >= 1
    error_message = "athena_results_retention_days must be at least 1."
  }
}

variable "noncurrent_version_retention_days" {
  description = "Days overwritten or deleted object versions are kept in every bucket."
  type        = number
  default     = 30

  validation {
    condition     = var.noncurrent_version_retention_days >= 1
    error_message = "noncurrent_version_retention_days must be at least 1."
  }
}

variable "access_logging_bucket" {
  description = "Name of an existing bucket that receives S3 server access logs of the three buckets (null: no access logging)."
  type        = string
  default     = null
}

variable "force_destroy" {
  description = "Let terraform destroy delete non-empty buckets and the Athena workgroup. Keep false outside test deployments."
  type        = bool
  default     = false
}

variable "kms_key_deletion_window_days" {
  description = "Days before a deleted KMS key is gone for good (7-30)."
  type        = number
  default     = 30

  validation {
    condition     = var.kms_key_deletion_window_days >= 7 && var.kms_key_deletion_window_days <= 30
    error_message = "kms_key_deletion_window_days must be 7-30."
  }
}

variable "geoip" {
  description = "GeoIP enrichment of the transform: a Lambda layer holding MaxMind-format databases (e.g. GeoLite2-City.mmdb, which MaxMind's licence keeps out of this repository) and their paths under /opt. Null: no locations, so the impossible-travel and country rules find nothing."
  type = object({
    layer_arn          = string
    city_database_path = optional(string, "/opt/GeoLite2-City.mmdb")
    asn_database_path  = optional(string)
  })
  default = null

  validation {
    condition     = var.geoip == null || try(startswith(var.geoip.city_database_path, "/opt/") && (var.geoip.asn_database_path == null ? true : startswith(var.geoip.asn_database_path, "/opt/")) && can(regex("^arn:aws[a-z-]*:lambda:", var.geoip.layer_arn)), false)
    error_message = "geoip.layer_arn must be a Lambda layer version ARN and the database paths must be under /opt/, where Lambda mounts layers."
  }
}

variable "enable_partition_projection" {
  description = "Use Athena partition projection instead of the partition generator function (no Glue partitions to keep up to date)."
  type        = bool
  default     = false
}

variable "partition_schedule" {
  description = "EventBridge schedule of the partition generator. It creates the current and next hour, so run it at least every 30 minutes."
  type        = string
  default     = "rate(15 minutes)"

  validation {
    condition     = can(regex("^(rate|cron)\\(.+\\)$", var.partition_schedule))
    error_message = "partition_schedule must be an EventBridge rate(...) or cron(...) expression."
  }
}

variable "partition_lookback_hours" {
  description = "How many past hours the partition generator checks for late or back-filled data."
  type        = number
  default     = 48

  validation {
    condition     = var.partition_lookback_hours >= 1 && var.partition_lookback_hours <= 24 * 90
    error_message = "partition_lookback_hours must be 1-2160."
  }
}

variable "enable_detector" {
  description = "Deploy the detector function (needs <lambda_dist_dir>/detector/bootstrap.zip)."
  type        = bool
  default     = false
}

variable "detector_schedule" {
  description = "EventBridge schedule of the detector."
  type        = string
  default     = "rate(5 minutes)"

  validation {
    condition     = can(regex("^(rate|cron)\\(.+\\)$", var.detector_schedule))
    error_message = "detector_schedule must be an EventBridge rate(...) or cron(...) expression."
  }
}

variable "s3_pull" {
  description = "Scheduled pull of objects from an S3-compatible store by the s3-ingest function (null: no pull). Credentials come from the Secrets Manager secret, or the function's role when secret_arn is null."
  type = object({
    schedule      = optional(string, "rate(1 hour)")
    endpoint_url  = optional(string)
    bucket        = string
    prefix        = optional(string, "")
    secret_arn    = optional(string)
    lookback_days = optional(number, 30)
  })
  default = null

  validation {
    condition     = var.s3_pull == null || try(can(regex("^(rate|cron)\\(.+\\)$", var.s3_pull.schedule)) && var.s3_pull.lookback_days >= 1, false)
    error_message = "s3_pull.schedule must be a rate(...) or cron(...) expression and lookback_days at least 1."
  }
}

variable "athena_bytes_scanned_cutoff_per_query" {
  description = "Athena cancels a query of this workgroup that scans more bytes than this (at least 10 MB)."
  type        = number
  default     = 10 * 1024 * 1024 * 1024

  validation {
    condition     = var.athena_bytes_scanned_cutoff_per_query >= 10485760
    error_message = "Athena needs a cutoff of at least 10485760 bytes (10 MB)."
  }
}

variable "alert_subscriptions" {
  description = "Subscriptions to the alerts topic, e.g. [{ protocol = \"email\", endpoint = \"soc@example.com\" }]. A firehose subscription needs subscription_role_arn, a role SNS assumes to write to the stream. Each is known by its protocol and endpoint, so removing one leaves the others (and their confirmations) alone."
  type = list(object({
    protocol              = string
    endpoint              = string
    subscription_role_arn = optional(string)
  }))
  default = []

  validation {
    condition     = alltrue([for subscription in var.alert_subscriptions : contains(["email", "email-json", "https", "sqs", "lambda", "firehose"], subscription.protocol)])
    error_message = "Subscription protocols must be email, email-json, https, sqs, lambda or firehose (plain http would send alerts unencrypted)."
  }

  validation {
    condition     = alltrue([for subscription in var.alert_subscriptions : (subscription.protocol == "firehose") == (subscription.subscription_role_arn != null)])
    error_message = "A firehose subscription needs subscription_role_arn (the role SNS uses to write to the stream), and only a firehose subscription takes one."
  }

  validation {
    condition     = length(distinct([for subscription in var.alert_subscriptions : "${subscription.protocol}:${subscription.endpoint}"])) == length(var.alert_subscriptions)
    error_message = "Each alert subscription must have a different protocol and endpoint."
  }
}

variable "alert_destinations" {
  description = "The detector's destinations file (TOML, see docs/alerts.md): webhook, slack, pagerduty and sns destinations, and routes by severity, rule id or tag. Secrets are Secrets Manager ARNs (listed in alert_destination_secret_arns), never values. null: every alert goes to the alerts topic."
  type        = string
  default     = null

  validation {
    # Lambda allows 4 KB of environment in all; the other variables take a few hundred bytes.
    condition     = var.alert_destinations == null ? true : length(var.alert_destinations) <= 3072
    error_message = "alert_destinations must be at most 3072 characters (it is passed in the detector's environment, which Lambda limits to 4 KB)."
  }
}

variable "alert_destination_secret_arns" {
  description = "ARNs of the Secrets Manager secrets alert_destinations refers to; the detector may read exactly these."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for arn in var.alert_destination_secret_arns : can(regex("^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:.+$", arn))])
    error_message = "Each alert destination secret must be a Secrets Manager secret ARN (arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME-SUFFIX)."
  }
}

variable "alert_destination_secret_kms_key_arns" {
  description = "Customer managed KMS keys that encrypt those secrets (none for secrets encrypted with the AWS managed key aws/secretsmanager)."
  type        = list(string)
  default     = []
}

variable "alarm_actions" {
  description = "ARNs notified when an operational alarm fires (e.g. an SNS topic of the operations team)."
  type        = list(string)
  default     = []
}

variable "rule_failure_runs" {
  description = "Detector runs in a row in which a rule fails before the detector-rule-failures alarm fires (one failed run is often a passing Athena hiccup; the failed windows are retried)."
  type        = number
  default     = 3

  validation {
    condition     = var.rule_failure_runs >= 1 && var.rule_failure_runs <= 24 && floor(var.rule_failure_runs) == var.rule_failure_runs
    error_message = "rule_failure_runs must be a whole number from 1 to 24."
  }
}

variable "tags" {
  description = "Tags added to every resource that takes tags."
  type        = map(string)
  default     = {}
}

variable "rule_dirs" {
  description = "Directories of your own detection rules (*.toml, see docs/detection.md), deployed beside the bundled ones. The detector reads them from the lake bucket at cold start: changing a rule needs `terraform apply`, not a new package."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for dir in var.rule_dirs : length(fileset(dir, "*.toml")) > 0])
    error_message = "Each of rule_dirs must be a directory holding rule files (*.toml)."
  }
}

variable "source_dirs" {
  description = "Directories of your own source files (*.toml, see docs/plugins-sources.md), deployed beside the bundled ones; the transform reads them at cold start."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for dir in var.source_dirs : length(fileset(dir, "*.toml")) > 0])
    error_message = "Each of source_dirs must be a directory holding source files (*.toml)."
  }
}

variable "query_dirs" {
  description = "Directories of your own saved queries (*.sql with a header comment, see docs/query.md), uploaded beside the bundled ones to content/queries.json."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for dir in var.query_dirs : length(fileset(dir, "*.sql")) > 0])
    error_message = "Each of query_dirs must be a directory holding saved queries (*.sql)."
  }
}

variable "deploy_content" {
  description = "Validate and upload the content (bundled and rule_dirs, source_dirs, query_dirs) to content/ in the lake bucket, for the detector and the transform to load at cold start. false: upload nothing and run no validator; the functions use the content embedded in their packages (as built), so the lakewatch CLI is not needed at apply."
  type        = bool
  default     = true
}

variable "include_bundled_content" {
  description = "Deploy the rules, sources and saved queries bundled with lakewatch beside your own (false: only those of rule_dirs, source_dirs and query_dirs)."
  type        = bool
  default     = true
}

variable "bundled_content_dir" {
  description = "The directory holding the bundled rules/, sources/ and queries/ (null: the repository root this module is in)."
  type        = string
  default     = null

  validation {
    condition     = var.bundled_content_dir == null || try(length(fileset(var.bundled_content_dir, "rules/*.toml")) > 0, false)
    error_message = "bundled_content_dir must hold rules/*.toml (the repository root)."
  }
}

variable "content_validator" {
  description = "The command that runs `lakewatch validate-content` on the content before `terraform apply` uploads it (the lakewatch CLI, built from the same checkout: `cargo install --path .` or [\"target/release/lakewatch\"]). Empty: no validation, so bad content fails at the Lambdas' cold start instead."
  type        = list(string)
  default     = ["lakewatch"]
}
