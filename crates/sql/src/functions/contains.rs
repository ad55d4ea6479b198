//! `contains(array, element)` (<https://trino.io/docs/current/functions/array.html>).
//!
//! Replaces DataFusion's `contains(string, search)`, a substring test: Athena's `contains`
//! takes an array. As in Trino: `true` if an element equals `element`; otherwise NULL when the
//! array holds a NULL (it might have been equal), else `false`; NULL for a NULL array or a
//! NULL element. A string first argument is an error that points to the substring tests.

use std::sync::Arc;

use datafusion::arrow::array::{Array, BooleanBuilder, ListArray, Scalar};
use datafusion::arrow::compute::cast;
use datafusion::arrow::compute::kernels::cmp::eq;
use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::common::{Result, exec_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use super::args::{Batch, check_arity, is_string, udf_struct};

udf_struct!(
    /// `contains(array, element) -> boolean`
    Contains
);

impl ScalarUDFImpl for Contains {
    fn name(&self) -> &str {
        "contains"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        check_arity(self.name(), "(array, element)", arg_types.len(), &[2])?;
        let item = match &arg_types[0] {
            DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
                f.data_type().clone()
            }
            t if is_string(t) && !t.is_null() => {
                return plan_err!(
                    "contains(array, element) takes an array (as in Athena); to test for a \
                     substring use strpos(s, 'x') > 0 or s LIKE '%x%'"
                );
            }
            t => return plan_err!("contains: first argument must be an array, got {t}"),
        };
        // Element types: strings compare as Utf8, numbers in the array's element type.
        let item = if is_string(&item) {
            DataType::Utf8
        } else {
            item
        };
        Ok(vec![
            DataType::List(Arc::new(Field::new("item", item.clone(), true))),
            item,
        ])
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Boolean)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let batch = Batch::new(&args.args)?;
        let Some(lists) = batch.arrays[0].as_any().downcast_ref::<ListArray>() else {
            return exec_err!("internal: contains expects a list after coercion");
        };
        let elements = &batch.arrays[1];
        let value_type = lists.value_type();
        let elements = if elements.data_type() == &value_type {
            Arc::clone(elements)
        } else {
            cast(elements, &value_type)?
        };
        let mut out = BooleanBuilder::with_capacity(lists.len());
        for i in 0..lists.len() {
            if lists.is_null(i) || elements.is_null(i) {
                out.append_null();
                continue;
            }
            let values = lists.value(i);
            let hits = eq(&values, &Scalar::new(elements.slice(i, 1)))?;
            if hits.true_count() > 0 {
                out.append_value(true);
            } else if values.null_count() > 0 {
                out.append_null();
            } else {
                out.append_value(false);
            }
        }
        batch.finish(Arc::new(out.finish()))
    }
}
