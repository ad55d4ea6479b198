//! `date_format(timestamp, format)` with MySQL format specifiers, as Trino
//! (<https://trino.io/docs/current/functions/datetime.html#mysql-date-functions>).
//!
//! Replaces DataFusion's `date_format`, an alias of `to_char` that takes chrono's `%`-codes
//! (`%M` is minutes there, the month name here). The timestamp is printed in its zone.
//! Supported: `%a %b %c %d %e %f %H %h %I %i %j %k %l %M %m %p %r %S %s %T %v %W %x %Y %y %%`,
//! and `%x` for any other `x` prints `x`. `%D %U %u %V %w %X` are errors, as in Trino.
//! `%f` prints microseconds of the millisecond-truncated time (`321000`), as Trino.

use std::fmt::Write;
use std::sync::Arc;

use chrono::{Datelike, NaiveDateTime, Timelike};
use datafusion::arrow::array::{Array, StringBuilder};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use super::args::{Batch, Compiled, check_arity, coerce_string, udf_struct};
use super::time::{Instants, coerce_timestamp};

udf_struct!(
    /// `date_format(timestamp, format) -> varchar`
    DateFormat
);

#[derive(Debug, PartialEq)]
enum Piece {
    Text(String),
    Spec(char),
}

/// Compiles a MySQL format string once.
fn compile(format: &str) -> Result<Vec<Piece>> {
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            text.push(c);
            continue;
        }
        match chars.next() {
            None => text.push('%'),
            Some(s @ ('D' | 'U' | 'u' | 'V' | 'w' | 'X')) => {
                return exec_err!(
                    "date_format: %{s} is not supported in a format (Trino does not support \
                     %D %U %u %V %w %X either); for weeks use %v with %x"
                );
            }
            Some(
                s @ ('a' | 'b' | 'c' | 'd' | 'e' | 'f' | 'H' | 'h' | 'I' | 'i' | 'j' | 'k' | 'l'
                | 'M' | 'm' | 'p' | 'r' | 'S' | 's' | 'T' | 'v' | 'W' | 'x' | 'Y' | 'y'),
            ) => {
                if !text.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut text)));
                }
                pieces.push(Piece::Spec(s));
            }
            Some(other) => text.push(other),
        }
    }
    if !text.is_empty() {
        pieces.push(Piece::Text(text));
    }
    Ok(pieces)
}

fn render(pieces: &[Piece], t: NaiveDateTime, out: &mut String) {
    let hour12 = match t.hour() % 12 {
        0 => 12,
        h => h,
    };
    let am_pm = if t.hour() < 12 { "AM" } else { "PM" };
    for p in pieces {
        let _ = match p {
            Piece::Text(s) => write!(out, "{s}"),
            Piece::Spec(c) => match c {
                'a' => write!(out, "{}", t.format("%a")),
                'b' => write!(out, "{}", t.format("%b")),
                'c' => write!(out, "{}", t.month()),
                'd' => write!(out, "{:02}", t.day()),
                'e' => write!(out, "{}", t.day()),
                'f' => write!(out, "{:06}", t.nanosecond() / 1_000_000 * 1000),
                'H' => write!(out, "{:02}", t.hour()),
                'h' | 'I' => write!(out, "{hour12:02}"),
                'i' => write!(out, "{:02}", t.minute()),
                'j' => write!(out, "{:03}", t.ordinal()),
                'k' => write!(out, "{}", t.hour()),
                'l' => write!(out, "{hour12}"),
                'M' => write!(out, "{}", t.format("%B")),
                'm' => write!(out, "{:02}", t.month()),
                'p' => write!(out, "{am_pm}"),
                'r' => write!(
                    out,
                    "{hour12:02}:{:02}:{:02} {am_pm}",
                    t.minute(),
                    t.second()
                ),
                'S' | 's' => write!(out, "{:02}", t.second()),
                'T' => write!(out, "{:02}:{:02}:{:02}", t.hour(), t.minute(), t.second()),
                'v' => write!(out, "{:02}", t.iso_week().week()),
                'W' => write!(out, "{}", t.format("%A")),
                'x' => write!(out, "{:04}", t.iso_week().year()),
                'Y' => write!(out, "{:04}", t.year()),
                _ => write!(out, "{:02}", t.year().rem_euclid(100)),
            },
        };
    }
}

impl ScalarUDFImpl for DateFormat {
    fn name(&self) -> &str {
        "date_format"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        check_arity(self.name(), "(timestamp, format)", arg_types.len(), &[2])?;
        Ok(vec![
            coerce_timestamp(self.name(), "timestamp", &arg_types[0])?,
            coerce_string(self.name(), "format", &arg_types[1])?,
        ])
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let batch = Batch::new(&args.args)?;
        let t = Instants::new(&batch.arrays[0])?;
        let formats = batch.strings(1)?;
        let mut compiled = Compiled::new();
        let mut out = StringBuilder::with_capacity(formats.len(), formats.len() * 20);
        let mut buf = String::new();
        for i in 0..formats.len() {
            match t.local(i) {
                Some(local) if formats.is_valid(i) => {
                    let pieces = compiled.get(formats.value(i), compile)?;
                    buf.clear();
                    render(&pieces, local, &mut buf);
                    out.append_value(&buf);
                }
                _ => out.append_null(),
            }
        }
        batch.finish(Arc::new(out.finish()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(format: &str, t: &str) -> String {
        let t = NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.f").unwrap();
        let mut out = String::new();
        render(&compile(format).unwrap(), t, &mut out);
        out
    }

    #[test]
    fn every_supported_specifier() {
        let t = "2001-08-02 15:04:05.321";
        let cases = [
            ("%m-%d-%Y %H", "2022-10-20 05:10:00", "10-20-2022 05"), // Trino's doc example
            ("%a %b %c %d %e", t, "Thu Aug 8 02 2"),
            ("%f", t, "321000"),
            ("%H %h %I %i %k %l %p", t, "15 03 03 04 15 3 PM"),
            ("%j %M %m", t, "214 August 08"),
            ("%r|%T|%S|%s", t, "03:04:05 PM|15:04:05|05|05"),
            ("%W %Y %y", t, "Thursday 2001 01"),
            ("%x-%v", "2021-01-01 00:00:00", "2020-53"),
            ("%h %p", "2001-08-02 00:30:00", "12 AM"),
            ("100%% %q %", t, "100% q %"),
        ];
        for (format, at, want) in cases {
            assert_eq!(fmt(format, at), want, "{format}");
        }
    }

    #[test]
    fn unsupported_specifiers_are_errors() {
        for f in ["%D", "%U", "%u", "%V", "%w", "%X"] {
            let err = compile(f).unwrap_err().to_string();
            assert!(err.contains("not supported"), "{f}: {err}");
        }
    }
}
