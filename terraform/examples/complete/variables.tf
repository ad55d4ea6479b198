variable "region" {
  description = "AWS region to deploy to."
  type        = string
  default     = "eu-west-1"
}

variable "name" {
  description = "Name of the deployment (prefix of every resource)."
  type        = string
  default     = "lakewatch"
}

variable "alert_email" {
  description = "E-mail address subscribed to the alerts topic (null: none)."
  type        = string
  default     = null
}
