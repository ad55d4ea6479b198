terraform {
  required_version = ">= 1.5.0"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # What CI validates, applies and re-plans (crates/terraform-checks/tests/apply.rs).
      version = "~> 5.100"
    }
  }
}
