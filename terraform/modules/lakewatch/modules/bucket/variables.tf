variable "name" {
  description = "Globally unique bucket name."
  type        = string

  validation {
    condition     = length(var.name) >= 3 && length(var.name) <= 63 && can(regex("^[a-z0-9][a-z0-9.-]*[a-z0-9]$", var.name))
    error_message = "S3 bucket names are 3-63 lower-case letters, digits, dots and dashes: choose a shorter deployment name."
  }
}

variable "kms_key_arn" {
  description = "Customer-managed KMS key that encrypts every object."
  type        = string
}

variable "expiration_days" {
  description = "Days after which current objects expire."
  type        = number

  validation {
    condition     = var.expiration_days >= 1
    error_message = "expiration_days must be at least 1."
  }
}

variable "noncurrent_version_retention_days" {
  description = "Days overwritten or deleted object versions are kept."
  type        = number
}

variable "access_logging_bucket" {
  description = "Existing bucket receiving server access logs (null: none)."
  type        = string
  default     = null
}

variable "force_destroy" {
  description = "Allow destroying a non-empty bucket."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags of the bucket."
  type        = map(string)
  default     = {}
}
