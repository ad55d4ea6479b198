//! Reads the Terraform tree as HCL so that tests can assert properties of the deployment
//! (least privilege, encryption, the Glue schema) without a cloud account or provider plugins,
//! and ([`cli`]) runs the `terraform` CLI with the real provider against a local AWS server.

pub mod cli;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use hcl::{Block, Body, Expression, ObjectKey};

/// One parsed `.tf` file.
pub struct TerraformFile {
    pub path: PathBuf,
    pub body: Body,
}

/// Parses every `.tf` file below `root`; an error names the file and the parser's position.
pub fn parse_tree(root: &Path) -> Result<Vec<TerraformFile>, String> {
    let mut paths = Vec::new();
    collect_tf_files(root, &mut paths).map_err(|e| format!("{}: {e}", root.display()))?;
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let text =
                std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            let body = hcl::parse(&text).map_err(|e| format!("{}: {e}", path.display()))?;
            Ok(TerraformFile { path, body })
        })
        .collect()
}

fn collect_tf_files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if path.is_dir() {
            if !name.starts_with('.') {
                collect_tf_files(&path, out)?;
            }
        } else if name.ends_with(".tf") {
            out.push(path);
        }
    }
    Ok(())
}

/// The top-level blocks of a kind and type across files: `blocks(files, "resource", "aws_s3_bucket")`.
pub fn blocks<'a>(
    files: &'a [TerraformFile],
    kind: &'a str,
    type_label: &'a str,
) -> impl Iterator<Item = (&'a TerraformFile, &'a Block)> + 'a {
    files.iter().flat_map(move |file| {
        file.body
            .blocks()
            .filter(move |b| {
                b.identifier() == kind && b.labels().first().map(|l| l.as_str()) == Some(type_label)
            })
            .map(move |b| (file, b))
    })
}

/// The name label of a block (`resource "type" "name"` → `name`).
pub fn block_name(block: &Block) -> &str {
    block.labels().last().map(|l| l.as_str()).unwrap_or("")
}

/// An attribute's expression in a block body.
pub fn attribute<'a>(body: &'a Body, key: &str) -> Option<&'a Expression> {
    body.attributes().find(|a| a.key() == key).map(|a| a.expr())
}

/// Nested blocks of a body with this identifier; `dynamic "x"` blocks count, with their `content`.
pub fn nested<'a>(body: &'a Body, identifier: &'a str) -> Vec<&'a Body> {
    body.blocks()
        .filter_map(|b| {
            if b.identifier() == identifier {
                Some(b.body())
            } else if b.identifier() == "dynamic"
                && b.labels().first().map(|l| l.as_str()) == Some(identifier)
            {
                b.body()
                    .blocks()
                    .find(|c| c.identifier() == "content")
                    .map(|c| c.body())
            } else {
                None
            }
        })
        .collect()
}

/// A plain string literal, if the expression is one.
pub fn as_str(expr: &Expression) -> Option<&str> {
    match expr {
        Expression::String(s) => Some(s),
        _ => None,
    }
}

/// The string literals of an array expression (other items are rendered as HCL).
pub fn string_list(expr: &Expression) -> Vec<String> {
    match expr {
        Expression::Array(items) => items.iter().map(render).collect(),
        other => vec![render(other)],
    }
}

/// An expression as text: literals without quotes, anything else as HCL source.
pub fn render(expr: &Expression) -> String {
    match expr {
        Expression::String(s) => s.clone(),
        other => {
            let mut text = String::new();
            let _ = write!(text, "{other}");
            text
        }
    }
}

/// An object expression's entries with their keys as text.
pub fn object_entries(expr: &Expression) -> Vec<(String, &Expression)> {
    match expr {
        Expression::Object(object) => object
            .iter()
            .map(|(key, value)| {
                let key = match key {
                    ObjectKey::Identifier(id) => id.to_string(),
                    ObjectKey::Expression(e) => render(e),
                    other => format!("{other:?}"),
                };
                (key, value)
            })
            .collect(),
        _ => Vec::new(),
    }
}
