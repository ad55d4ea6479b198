# A complete lakewatch deployment. Build the Lambda packages first (from the repository root):
#   scripts/build-lambdas
# then:
#   terraform init && terraform apply -var 'alert_email=soc@example.com'

provider "aws" {
  region = var.region
}

module "lakewatch" {
  source = "../../modules/lakewatch"

  name            = var.name
  lambda_dist_dir = "${path.root}/../../../dist/lambda"

  alert_subscriptions = var.alert_email == null ? [] : [
    { protocol = "email", endpoint = var.alert_email },
  ]

  tags = {
    project = "lakewatch"
  }
}
