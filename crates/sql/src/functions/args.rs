//! Argument plumbing shared by the functions: type coercion to the one string type the kernels
//! read, scalar/array broadcasting, and constants that are compiled once per batch.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, Int64Array, StringArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::ColumnarValue;

/// Whether `t` is one of Arrow's string types (or NULL, which coerces to any).
pub(crate) fn is_string(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null
    )
}

/// Coerces an argument that must be text to `Utf8`, so each kernel reads one array type.
/// `what` names the argument in the error ("json", "path"…).
pub(crate) fn coerce_string(function: &str, what: &str, t: &DataType) -> Result<DataType> {
    if is_string(t) {
        Ok(DataType::Utf8)
    } else {
        plan_err!("{function}: {what} must be a string (varchar), got {t}")
    }
}

/// Checks the argument count against what the function accepts, with its call shape in the error.
pub(crate) fn check_arity(
    function: &str,
    usage: &str,
    got: usize,
    allowed: &[usize],
) -> Result<()> {
    if allowed.contains(&got) {
        Ok(())
    } else {
        plan_err!("{function} takes {usage}; got {got} argument(s)")
    }
}

/// The arguments of one call as arrays of equal length (constants broadcast), remembering
/// whether every argument was a constant so the result can be folded back into a scalar.
pub(crate) struct Batch {
    pub arrays: Vec<ArrayRef>,
    all_scalar: bool,
}

impl Batch {
    pub fn new(args: &[ColumnarValue]) -> Result<Self> {
        let all_scalar = args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)));
        Ok(Self {
            arrays: ColumnarValue::values_to_arrays(args)?,
            all_scalar,
        })
    }

    /// The `i`th argument as a string array (after coercion every text argument is `Utf8`).
    pub fn strings(&self, i: usize) -> Result<&StringArray> {
        match self.arrays[i].as_any().downcast_ref::<StringArray>() {
            Some(a) => Ok(a),
            None => exec_err!(
                "internal: argument {} is {}, expected Utf8 after coercion",
                i + 1,
                self.arrays[i].data_type()
            ),
        }
    }

    /// Wraps a result array: a scalar when all inputs were constants (constant folding).
    pub fn finish(&self, result: ArrayRef) -> Result<ColumnarValue> {
        if self.all_scalar {
            Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(
                &result, 0,
            )?))
        } else {
            Ok(ColumnarValue::Array(result))
        }
    }
}

/// The value of a constant text argument: `Some(None)` for a NULL constant, `None` when the
/// argument varies by row. Functions compile such constants (JSON paths, regexes, formats) once.
pub(crate) fn constant_str(arg: &ColumnarValue) -> Option<Option<&str>> {
    match arg {
        ColumnarValue::Scalar(s) => match s {
            ScalarValue::Utf8(v) | ScalarValue::LargeUtf8(v) | ScalarValue::Utf8View(v) => {
                Some(v.as_deref())
            }
            ScalarValue::Null => Some(None),
            _ => None,
        },
        ColumnarValue::Array(_) => None,
    }
}

/// Compiles per-row values of an argument that is usually constant, reusing the last
/// compilation while the text repeats (a column of identical patterns compiles once).
pub(crate) struct Compiled<T> {
    last: Option<(String, Arc<T>)>,
}

impl<T> Compiled<T> {
    pub fn new() -> Self {
        Self { last: None }
    }

    pub fn get(&mut self, text: &str, compile: impl FnOnce(&str) -> Result<T>) -> Result<Arc<T>> {
        if let Some((t, v)) = &self.last {
            if t == text {
                return Ok(Arc::clone(v));
            }
        }
        let v = Arc::new(compile(text)?);
        self.last = Some((text.to_string(), Arc::clone(&v)));
        Ok(v)
    }
}

/// Coerces an argument that must be an integer to `Int64` (Trino's bigint).
pub(crate) fn coerce_integer(function: &str, what: &str, t: &DataType) -> Result<DataType> {
    if t.is_integer() || t.is_null() {
        Ok(DataType::Int64)
    } else {
        plan_err!("{function}: {what} must be an integer, got {t}")
    }
}

/// Row `i` of an optional integer argument: `default` when the argument was not given,
/// `None` when it is NULL.
pub(crate) fn optional_int(arg: Option<&Int64Array>, i: usize, default: i64) -> Option<i64> {
    match arg {
        None => Some(default),
        Some(a) if a.is_null(i) => None,
        Some(a) => Some(a.value(i)),
    }
}

/// Declares a function's struct: its signature (by default `user_defined`, checked by its
/// own `coerce_types`) and a `Default` that builds it.
macro_rules! udf_struct {
    ($(#[$doc:meta])* $name:ident) => {
        udf_struct!($(#[$doc])* $name, Signature::user_defined(Volatility::Immutable));
    };
    ($(#[$doc:meta])* $name:ident, $signature:expr) => {
        $(#[$doc])*
        #[derive(Debug, PartialEq, Eq, Hash)]
        pub struct $name {
            signature: Signature,
        }

        impl Default for $name {
            fn default() -> Self {
                Self { signature: $signature }
            }
        }
    };
}
pub(crate) use udf_struct;

/// Coerces a call whose arguments are all text, named by `names` (for the arity check and
/// the errors), to `Utf8` each.
pub(crate) fn coerce_strings(
    function: &str,
    names: &[&str],
    arg_types: &[DataType],
) -> Result<Vec<DataType>> {
    check_arity(
        function,
        &format!("({})", names.join(", ")),
        arg_types.len(),
        &[names.len()],
    )?;
    names
        .iter()
        .zip(arg_types)
        .map(|(name, t)| coerce_string(function, name, t))
        .collect()
}
