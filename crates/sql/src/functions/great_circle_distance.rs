//! `great_circle_distance(latitude1, longitude1, latitude2, longitude2)`
//! (<https://trino.io/docs/current/functions/geospatial.html>).
//!
//! The distance in kilometres between two points given in degrees, on a sphere of radius
//! 6371.01 km, with the same (Vincenty special case) formula as Trino so results agree to the
//! last digits. A latitude outside [-90, 90] or a longitude outside [-180, 180] is an error.

use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, Float64Builder};
use datafusion::arrow::datatypes::{DataType, Float64Type};
use datafusion::common::{Result, exec_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use super::args::{Batch, check_arity, udf_struct};

/// Trino's `EARTH_RADIUS_KM`.
const EARTH_RADIUS_KM: f64 = 6371.01;

udf_struct!(
    /// `great_circle_distance(latitude1, longitude1, latitude2, longitude2) -> double`
    GreatCircleDistance
);

/// The distance in km; an error names the coordinate out of range.
pub(crate) fn distance_km(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> Result<f64> {
    for lat in [lat1, lat2] {
        if !(-90.0..=90.0).contains(&lat) {
            return exec_err!(
                "great_circle_distance: latitude must be between -90 and 90, got {lat}"
            );
        }
    }
    for lon in [lon1, lon2] {
        if !(-180.0..=180.0).contains(&lon) {
            return exec_err!(
                "great_circle_distance: longitude must be between -180 and 180, got {lon}"
            );
        }
    }
    let (rlat1, rlat2) = (lat1.to_radians(), lat2.to_radians());
    let (sin1, sin2) = (rlat1.sin(), rlat2.sin());
    let (cos1, cos2) = (rlat1.cos(), rlat2.cos());
    let dlon = (lon1 - lon2).to_radians();
    let cos_dlon = dlon.cos();
    let a1 = cos2 * dlon.sin();
    let a2 = cos1 * sin2 - sin1 * cos2 * cos_dlon;
    let b = sin1 * sin2 + cos1 * cos2 * cos_dlon;
    Ok(EARTH_RADIUS_KM * (a1 * a1 + a2 * a2).sqrt().atan2(b))
}

impl ScalarUDFImpl for GreatCircleDistance {
    fn name(&self) -> &str {
        "great_circle_distance"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        check_arity(
            self.name(),
            "(latitude1, longitude1, latitude2, longitude2)",
            arg_types.len(),
            &[4],
        )?;
        for t in arg_types {
            if !(t.is_numeric() || t.is_null()) {
                return plan_err!(
                    "great_circle_distance: coordinates must be numbers (degrees), got {t}"
                );
            }
        }
        Ok(vec![DataType::Float64; 4])
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let batch = Batch::new(&args.args)?;
        let c: Vec<_> = batch
            .arrays
            .iter()
            .map(|a| a.as_primitive::<Float64Type>())
            .collect();
        let mut out = Float64Builder::with_capacity(c[0].len());
        for i in 0..c[0].len() {
            let v = if c.iter().any(|a| a.is_null(i)) {
                None
            } else {
                Some(distance_km(
                    c[0].value(i),
                    c[1].value(i),
                    c[2].value(i),
                    c[3].value(i),
                )?)
            };
            out.append_option(v);
        }
        batch.finish(Arc::new(out.finish()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_trinos_values() {
        // Trino's TestGeoFunctions: Nashville to Los Angeles.
        let d = distance_km(36.12, -86.67, 33.94, -118.40).unwrap();
        assert!((d - 2886.448973436703).abs() < 1e-9, "{d}");
        assert_eq!(distance_km(10.0, 20.0, 10.0, 20.0).unwrap(), 0.0);
        // Half the circumference between antipodes.
        let half = distance_km(0.0, 0.0, 0.0, 180.0).unwrap();
        assert!(
            (half - std::f64::consts::PI * EARTH_RADIUS_KM).abs() < 1e-6,
            "{half}"
        );
    }

    #[test]
    fn out_of_range_coordinates_are_errors() {
        assert!(
            distance_km(91.0, 0.0, 0.0, 0.0)
                .unwrap_err()
                .to_string()
                .contains("latitude")
        );
        assert!(
            distance_km(0.0, 0.0, 0.0, -181.0)
                .unwrap_err()
                .to_string()
                .contains("longitude")
        );
    }
}
