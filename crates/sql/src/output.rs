//! A [`QueryResult`] as people and scripts want it: Athena-style strings per cell, an aligned
//! table, one JSON object per row, CSV.

use std::io::Write;

use datafusion::arrow::array::Array;
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::json::{LineDelimitedWriter, WriterBuilder};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::arrow::util::pretty::{
    pretty_format_batches_with_options, pretty_format_batches_with_schema,
};

use crate::engine::QueryResult;

/// Timestamps as Athena prints them (`2024-01-15 10:00:00.000`).
const TIMESTAMP: &str = "%Y-%m-%d %H:%M:%S%.3f";
const TIMESTAMP_TZ: &str = "%Y-%m-%d %H:%M:%S%.3f %Z";

fn options(null: &str) -> FormatOptions<'_> {
    FormatOptions::default()
        .with_display_error(true)
        .with_null(null)
        .with_timestamp_format(Some(TIMESTAMP))
        .with_timestamp_tz_format(Some(TIMESTAMP_TZ))
}

impl QueryResult {
    /// The column names, in order.
    pub fn column_names(&self) -> Vec<String> {
        self.schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect()
    }

    pub fn num_rows(&self) -> usize {
        self.batches.iter().map(|b| b.num_rows()).sum()
    }

    /// Every cell as text, as Athena's `GetQueryResults` returns them: numbers and arrays
    /// (`[a, b]`) rendered, NULL as `None`.
    pub fn rows(&self) -> Result<Vec<Vec<Option<String>>>, ArrowError> {
        let options = options("");
        let mut rows = Vec::with_capacity(self.num_rows());
        for batch in &self.batches {
            let formatters = batch
                .columns()
                .iter()
                .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
                .collect::<Result<Vec<_>, _>>()?;
            for row in 0..batch.num_rows() {
                rows.push(
                    batch
                        .columns()
                        .iter()
                        .zip(&formatters)
                        .map(|(column, f)| column.is_valid(row).then(|| f.value(row).to_string()))
                        .collect(),
                );
            }
        }
        Ok(rows)
    }

    /// An aligned table for people; NULL shows as `NULL`.
    pub fn to_table(&self) -> Result<String, ArrowError> {
        if self.num_rows() == 0 {
            // Still show the columns, so an empty answer is visibly an answer.
            return Ok(pretty_format_batches_with_schema(self.schema.clone(), &[])?.to_string());
        }
        Ok(pretty_format_batches_with_options(&self.batches, &options("NULL"))?.to_string())
    }

    /// One JSON object per line, every column present (NULL as `null`), arrays as arrays.
    pub fn write_json(&self, out: impl Write) -> Result<(), ArrowError> {
        let mut writer: LineDelimitedWriter<_> = WriterBuilder::new()
            .with_explicit_nulls(true)
            .with_timestamp_format(TIMESTAMP.to_string())
            .build(out);
        for batch in &self.batches {
            writer.write(batch)?;
        }
        writer.finish()
    }

    /// CSV with a header row (RFC 4180 quoting; NULL as an empty field).
    pub fn write_csv(&self, mut out: impl Write) -> Result<(), ArrowError> {
        let names = self.column_names();
        write_csv_row(&mut out, names.iter().map(|n| Some(n.as_str())))?;
        for row in self.rows()? {
            write_csv_row(&mut out, row.iter().map(|c| c.as_deref()))?;
        }
        Ok(())
    }
}

fn write_csv_row<'a>(
    out: &mut impl Write,
    cells: impl Iterator<Item = Option<&'a str>>,
) -> Result<(), ArrowError> {
    let mut line = String::new();
    for (i, cell) in cells.enumerate() {
        if i > 0 {
            line.push(',');
        }
        let cell = cell.unwrap_or("");
        if cell.contains([',', '"', '\n', '\r']) {
            line.push('"');
            line.push_str(&cell.replace('"', "\"\""));
            line.push('"');
        } else {
            line.push_str(cell);
        }
    }
    line.push('\n');
    out.write_all(line.as_bytes())
        .map_err(|e| ArrowError::IoError(e.to_string(), e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reader::ScanStats;
    use datafusion::arrow::array::{ArrayRef, Int64Array, ListBuilder, StringArray, StringBuilder};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::arrow::record_batch::RecordBatch;
    use std::sync::Arc;

    fn result() -> QueryResult {
        let mut tags = ListBuilder::new(StringBuilder::new());
        tags.values().append_value("a");
        tags.values().append_value("b");
        tags.append(true);
        tags.append_null();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(vec![Some("x,\"y\""), None])),
            Arc::new(Int64Array::from(vec![Some(1), Some(2)])),
            Arc::new(tags.finish()),
        ];
        let schema = Arc::new(Schema::new(vec![
            Field::new("s", DataType::Utf8, true),
            Field::new("n", DataType::Int64, true),
            Field::new(
                "tags",
                DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
                true,
            ),
        ]));
        QueryResult {
            batches: vec![RecordBatch::try_new(schema.clone(), columns).unwrap()],
            schema,
            stats: ScanStats::default(),
        }
    }

    #[test]
    fn rows_are_strings_like_athena_with_nulls_as_none() {
        assert_eq!(
            result().rows().unwrap(),
            vec![
                vec![
                    Some("x,\"y\"".into()),
                    Some("1".into()),
                    Some("[a, b]".into())
                ],
                vec![None, Some("2".into()), None],
            ]
        );
    }

    #[test]
    fn csv_quotes_only_what_needs_it() {
        let mut out = Vec::new();
        result().write_csv(&mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "s,n,tags\n\"x,\"\"y\"\"\",1,\"[a, b]\"\n,2,\n"
        );
    }

    #[test]
    fn json_has_every_column_and_real_arrays() {
        let mut out = Vec::new();
        result().write_json(&mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"s\":\"x,\\\"y\\\"\",\"n\":1,\"tags\":[\"a\",\"b\"]}\n{\"s\":null,\"n\":2,\"tags\":null}\n"
        );
    }

    #[test]
    fn table_shows_null_and_an_empty_result_keeps_its_header() {
        let table = result().to_table().unwrap();
        assert!(table.contains("| NULL "), "{table}");
        let mut empty = result();
        empty.batches.clear();
        let table = empty.to_table().unwrap();
        assert!(table.contains("| s | n | tags |"), "{table}");
    }
}
