# Content: the detection rules, sources and saved queries, bundled with lakewatch and the
# deployment's own (variables rule_dirs, source_dirs, query_dirs), validated, then uploaded to
# the lake bucket as one object per kind (content/rules.json, content/sources.json,
# content/queries.json: {"files": [{"origin", "text"}]}, read by lakewatch_plugins::content).
# The detector reads the rules and the transform the sources at cold start, so a changed rule
# file needs `terraform apply`, not a new Lambda package.
#
# Validation runs `lakewatch validate-content` on exactly the directories uploaded, before any
# upload: a TOML error, a rule whose SQL does not parse or plan, or a source whose tests fail
# stops `terraform apply` with the file and line, and the objects keep the last good content.
# `terraform plan` shows which bundles change but cannot run programs: the check happens at
# apply (and in CI, which runs validate-content).

locals {
  content_prefix = "content/"

  # The repository root that holds the bundled rules/, sources/ and queries/.
  bundled_content_root = coalesce(var.bundled_content_dir, "${path.module}/../../..")

  content_extensions = { rules = "toml", sources = "toml", queries = "sql" }
  content_dirs = {
    rules   = concat(var.include_bundled_content ? ["${local.bundled_content_root}/rules"] : [], var.rule_dirs)
    sources = concat(var.include_bundled_content ? ["${local.bundled_content_root}/sources"] : [], var.source_dirs)
    queries = concat(var.include_bundled_content ? ["${local.bundled_content_root}/queries"] : [], var.query_dirs)
  }

  # Every file of each kind, in load order (directory, then name), as lakewatch names it in
  # errors: bundled files as `rules/x.toml`, the deployment's by the path given.
  content_bundles = {
    for kind, dirs in local.content_dirs : kind => jsonencode({
      files = flatten([
        for index, dir in dirs : [
          for file in sort(fileset(dir, "*.${local.content_extensions[kind]}")) : {
            origin = var.include_bundled_content && index == 0 ? "${kind}/${file}" : "${dir}/${file}"
            text   = file("${dir}/${file}")
          }
        ]
      ])
    })
  }

  # The functions' environment names the bundle's hash too: a new upload publishes a new
  # version, so the next invocation starts cold and reads it.
  # Without deployed content the functions fall back to what their packages embed.
  content_environment = {
    for kind in keys(local.content_bundles) : kind => var.deploy_content ? {
      LAKEWATCH_CONTENT_BUCKET = local.lake_bucket_name
      LAKEWATCH_CONTENT_PREFIX = local.content_prefix
      LAKEWATCH_CONTENT_SHA256 = sha256(local.content_bundles[kind])
    } : {}
  }

  content_validation_command = join(" ", concat(
    [for word in var.content_validator : format("%q", word)],
    ["validate-content", "--no-bundled-rules", "--no-bundled-sources", "--no-bundled-queries"],
    flatten([for kind, dirs in local.content_dirs : [for dir in dirs : "--${kind} ${format("%q", abspath(dir))}"]]),
  ))
}

# Runs again whenever any content file changes; a failure stops the apply before the uploads.
resource "terraform_data" "content_validation" {
  count = var.deploy_content && length(var.content_validator) > 0 ? 1 : 0

  triggers_replace = sha256(join("", [for kind in sort(keys(local.content_bundles)) : local.content_bundles[kind]]))

  provisioner "local-exec" {
    command = local.content_validation_command
  }
}

resource "aws_s3_object" "content" {
  for_each = var.deploy_content ? local.content_bundles : {}

  bucket       = module.lake_bucket.id
  key          = "${local.content_prefix}${each.key}.json"
  content      = each.value
  content_type = "application/json"
  # As the bucket encrypts: with the deployment's key. (An `etag` cannot track SSE-KMS
  # objects, whose ETag is not the content's MD5; `content` itself is compared on each plan.)
  server_side_encryption = "aws:kms"
  kms_key_id             = aws_kms_key.this.arn
  tags                   = local.tags

  depends_on = [terraform_data.content_validation]
}
