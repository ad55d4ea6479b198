//! `geoip`: where an event's source address is, from MaxMind-format databases.
//!
//! Detection rules need places: impossible travel compares the coordinates of consecutive
//! logins, new-country rules compare countries. This plugin looks up `details.sourceipaddress`
//! (set by the `ipaddress` plugin) in a City database and, when configured, an ASN database
//! (GeoIP2 / GeoLite2 or anything in the same format) and writes
//!
//! ```json
//! "sourcegeo": {"city": "London", "country": "GB", "countryname": "United Kingdom",
//!               "latitude": 51.5074, "longitude": -0.1278, "asn": 64496, "asorg": "Example…"}
//! ```
//!
//! Every key is always written; one the databases do not know is `null`. An address neither
//! database knows (a private address, a network missing from the database) gets no
//! `sourcegeo` at all.
//!
//! # Configuration
//! [`PluginConfig::geoip_city_database`] and [`PluginConfig::geoip_asn_database`] are paths to
//! `.mmdb` files (in Lambda: a file in a layer under `/opt`, or one fetched to `/tmp` at init);
//! [`PluginConfig::from_env`] reads them from [`GEOIP_CITY_ENV`] and [`GEOIP_ASN_ENV`]. With
//! neither set the plugin is not registered and [`crate::builtin_plugins_with_notes`] says so
//! once. A configured file that cannot be read or
//! is not a MaxMind database stops the setup with an error naming the path.
//!
//! The databases are read into memory once, at setup; lookups then cost no I/O.

use std::net::IpAddr;
use std::path::Path;

use maxminddb::{Reader, geoip2};
use serde_json::{Map, Value, json};

use crate::ipaddress::{SOURCE_KEY, parse_address, set_keeping_original};
use crate::plugin::{Plugin, PluginError, Registration, Stage, Trigger, Verdict};
use crate::shell::Event;
use crate::{ConfigError, ConfigNotes, GEOIP_ASN_ENV, GEOIP_CITY_ENV, PluginConfig};

/// Where the location of the source address is written.
pub const GEO_KEY: &str = "sourcegeo";
/// What [`GeoIp::from_config`] notes when no database is configured.
pub const NOT_CONFIGURED_NOTE: &str = "geoip: no GeoIP database configured, so events get no \
`sourcegeo` (and location rules such as impossible travel find nothing); set \
LAKEWATCH_GEOIP_CITY_DATABASE (and optionally LAKEWATCH_GEOIP_ASN_DATABASE) to the path of a \
MaxMind-format .mmdb file to enable it";

/// The plugin: the databases, read into memory.
#[derive(Debug)]
pub struct GeoIp {
    city: Option<Reader<Vec<u8>>>,
    asn: Option<Reader<Vec<u8>>>,
}

impl GeoIp {
    /// Opens the configured databases. `Ok(None)`, with a note, when none is configured.
    pub fn from_config(
        config: &PluginConfig,
        notes: &mut ConfigNotes,
    ) -> Result<Option<GeoIp>, ConfigError> {
        if config.geoip_city_database.is_none() && config.geoip_asn_database.is_none() {
            notes.0.push(NOT_CONFIGURED_NOTE.to_string());
            return Ok(None);
        }
        Ok(Some(GeoIp {
            city: config
                .geoip_city_database
                .as_deref()
                .map(|path| open(path, "city", GEOIP_CITY_ENV))
                .transpose()?,
            asn: config
                .geoip_asn_database
                .as_deref()
                .map(|path| open(path, "ASN", GEOIP_ASN_ENV))
                .transpose()?,
        }))
    }

    /// The location of one address, or `None` when no database knows it.
    pub fn locate(&self, address: IpAddr) -> Result<Option<Map<String, Value>>, PluginError> {
        let city = match &self.city {
            Some(reader) => lookup::<geoip2::City>(reader, address, "city")?,
            None => None,
        };
        let asn = match &self.asn {
            Some(reader) => lookup::<geoip2::Asn>(reader, address, "ASN")?,
            None => None,
        };
        if city.is_none() && asn.is_none() {
            return Ok(None);
        }
        let city = city.unwrap_or_default();
        let country = if city.country.iso_code.is_some() {
            &city.country
        } else {
            &city.registered_country
        };
        let Value::Object(geo) = json!({
            "city": city.city.names.english,
            "country": country.iso_code,
            "countryname": country.names.english,
            "latitude": city.location.latitude,
            "longitude": city.location.longitude,
            "asn": asn.as_ref().and_then(|asn| asn.autonomous_system_number),
            "asorg": asn.as_ref().and_then(|asn| asn.autonomous_system_organization),
        }) else {
            unreachable!("json! of an object literal is an object")
        };
        Ok(Some(geo))
    }
}

impl Plugin for GeoIp {
    fn name(&self) -> &'static str {
        "geoip"
    }

    fn registration(&self) -> Registration {
        Registration::new(
            Stage::Enrich,
            10,
            vec![Trigger::Field(SOURCE_KEY.to_string())],
        )
    }

    fn process(&self, event: &mut Event) -> Result<Verdict, PluginError> {
        let Some(address) = event.detail_str(SOURCE_KEY).and_then(parse_address) else {
            return Ok(Verdict::Unchanged);
        };
        let Some(geo) = self.locate(address)? else {
            return Ok(Verdict::Unchanged);
        };
        Ok(
            if set_keeping_original(&mut event.details, GEO_KEY, Value::Object(geo)) {
                Verdict::Changed
            } else {
                Verdict::Unchanged
            },
        )
    }
}

/// Reads a database into memory, with an error that says which file and what to do.
fn open(path: &Path, kind: &str, variable: &str) -> Result<Reader<Vec<u8>>, ConfigError> {
    Reader::open_readfile(path).map_err(|error| {
        ConfigError(format!(
            "cannot open the GeoIP {kind} database {}: {error}; point {variable} \
             (PluginConfig::geoip_{}_database) at a readable MaxMind-format .mmdb file, or \
             unset it to run without GeoIP",
            path.display(),
            kind.to_lowercase(),
        ))
    })
}

/// Looks one address up; a record that cannot be decoded is an error naming the database.
fn lookup<'a, T: serde::Deserialize<'a>>(
    reader: &'a Reader<Vec<u8>>,
    address: IpAddr,
    kind: &str,
) -> Result<Option<T>, PluginError> {
    reader
        .lookup(address)
        .and_then(|result| result.decode::<T>())
        .map_err(|error| {
            PluginError(format!(
                "the GeoIP {kind} database has a bad record for {address}: {error}"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::testing::process_json;
    use std::path::PathBuf;

    /// The databases `events/geoip/make-test-databases.py` writes (documentation networks).
    fn test_database(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../events/geoip")
            .join(name)
    }

    // `..default()` keeps this compiling when other plugins add settings.
    #[allow(clippy::needless_update)]
    fn config(city: bool, asn: bool) -> PluginConfig {
        PluginConfig {
            geoip_city_database: city.then(|| test_database("test-city.mmdb")),
            geoip_asn_database: asn.then(|| test_database("test-asn.mmdb")),
            ..PluginConfig::default()
        }
    }

    fn plugin(city: bool, asn: bool) -> GeoIp {
        GeoIp::from_config(&config(city, asn), &mut ConfigNotes::default())
            .unwrap()
            .expect("configured")
    }

    fn run(plugin: &GeoIp, details: Value) -> (Verdict, Value) {
        let (verdict, event) = process_json(plugin, &details.to_string());
        (verdict, Value::Object(event.details))
    }

    #[test]
    fn locates_cities_on_three_continents_with_their_coordinates_and_as() {
        let plugin = plugin(true, true);
        let cases = [
            (
                "192.0.2.10",
                "New York",
                "US",
                "United States",
                40.7128,
                -74.0060,
                64496,
            ),
            (
                "192.0.2.70",
                "London",
                "GB",
                "United Kingdom",
                51.5074,
                -0.1278,
                64496,
            ),
            (
                "198.51.100.5",
                "Sydney",
                "AU",
                "Australia",
                -33.8688,
                151.2093,
                64497,
            ),
            (
                "198.51.100.200",
                "Tokyo",
                "JP",
                "Japan",
                35.6762,
                139.6503,
                64497,
            ),
            (
                "203.0.113.9",
                "São Paulo",
                "BR",
                "Brazil",
                -23.5505,
                -46.6333,
                64498,
            ),
            (
                "2001:db8:1::42",
                "Tokyo",
                "JP",
                "Japan",
                35.6762,
                139.6503,
                64499,
            ),
        ];
        for (address, city, country, name, latitude, longitude, asn) in cases {
            let (verdict, details) = run(&plugin, json!({"sourceipaddress": address}));
            assert_eq!(verdict, Verdict::Changed, "{address}");
            let geo = &details["sourcegeo"];
            assert_eq!(geo["city"], city, "{address}");
            assert_eq!(geo["country"], country, "{address}");
            assert_eq!(geo["countryname"], name, "{address}");
            assert_eq!(geo["latitude"], latitude, "{address}");
            assert_eq!(geo["longitude"], longitude, "{address}");
            assert_eq!(geo["asn"], asn, "{address}");
            assert!(
                geo["asorg"].as_str().unwrap().starts_with("Example"),
                "{address}"
            );
        }
    }

    #[test]
    fn a_network_only_the_asn_database_knows_gets_nulls_for_the_place() {
        let (_, details) = run(
            &plugin(true, true),
            json!({"sourceipaddress": "203.0.113.200"}),
        );
        assert_eq!(
            details["sourcegeo"],
            json!({"city": null, "country": null, "countryname": null, "latitude": null,
                   "longitude": null, "asn": 64498, "asorg": "Example South America Telecom"})
        );
    }

    #[test]
    fn without_an_asn_database_the_as_fields_are_null() {
        let (_, details) = run(
            &plugin(true, false),
            json!({"sourceipaddress": "192.0.2.70"}),
        );
        assert_eq!(details["sourcegeo"]["city"], "London");
        assert_eq!(details["sourcegeo"]["asn"], Value::Null);
        assert_eq!(details["sourcegeo"]["asorg"], Value::Null);
    }

    #[test]
    fn an_asn_database_alone_is_enough_to_register_and_gives_the_as_only() {
        let mut notes = ConfigNotes::default();
        let plugin = GeoIp::from_config(&config(false, true), &mut notes)
            .unwrap()
            .expect("an ASN database alone enables the plugin");
        assert!(notes.0.is_empty());
        let (_, details) = run(&plugin, json!({"sourceipaddress": "192.0.2.70"}));
        assert_eq!(details["sourcegeo"]["asn"], 64496);
        assert_eq!(details["sourcegeo"]["city"], Value::Null);
        assert_eq!(details["sourcegeo"]["latitude"], Value::Null);
    }

    #[test]
    fn unknown_private_and_invalid_addresses_get_no_sourcegeo() {
        let plugin = plugin(true, true);
        for address in [
            "10.1.2.3",
            "8.8.8.8",
            "::1",
            "123.456.253.226",
            "AWS Internal",
        ] {
            let (verdict, details) = run(&plugin, json!({"sourceipaddress": address}));
            assert_eq!(verdict, Verdict::Unchanged, "{address}");
            assert!(details.get("sourcegeo").is_none(), "{address}");
        }
    }

    #[test]
    fn an_existing_different_sourcegeo_is_kept_as_the_original() {
        let plugin = plugin(true, false);
        let (_, details) = run(
            &plugin,
            json!({"sourceipaddress": "192.0.2.70", "sourcegeo": {"city": "Elsewhere"}}),
        );
        assert_eq!(details["sourcegeo"]["city"], "London");
        assert_eq!(details["sourcegeo_original"], json!({"city": "Elsewhere"}));
        let (verdict, again) = run(&plugin, details.clone());
        assert_eq!(verdict, Verdict::Unchanged);
        assert_eq!(again, details);
    }

    #[test]
    fn registers_on_the_source_address_after_the_ipaddress_plugin() {
        let registration = plugin(true, false).registration();
        assert_eq!(registration.stage, Stage::Enrich);
        assert!(registration.priority > 0);
        assert_eq!(
            registration.triggers,
            [Trigger::Field("sourceipaddress".into())]
        );
    }

    #[test]
    fn without_a_database_the_plugin_is_left_out_with_one_note() {
        let mut notes = ConfigNotes::default();
        let plugin = GeoIp::from_config(&PluginConfig::default(), &mut notes).unwrap();
        assert!(plugin.is_none());
        assert_eq!(notes.0, [NOT_CONFIGURED_NOTE]);
    }

    /// The committed databases are exactly what the committed generator writes, so the
    /// networks its source documents are the ones the tests and the demo use.
    #[test]
    fn the_test_databases_are_what_their_generator_writes() {
        // LAKEWATCH_PYTHON (set by .ci/test), else the repository's .venv.
        let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
        let python = std::env::var_os("LAKEWATCH_PYTHON")
            .map(PathBuf::from)
            .or_else(|| venv.exists().then_some(venv))
            .unwrap_or_else(|| {
                panic!(
                    "no Python to run events/geoip/make-test-databases.py: run \
                     `python3 -m venv .venv && .venv/bin/pip install -r .ci/requirements.txt` \
                     in the repository, or set LAKEWATCH_PYTHON to a Python with mmdb-writer"
                )
            });
        let out = std::env::temp_dir().join(format!("lakewatch-geoip-{}", std::process::id()));
        let status = std::process::Command::new(&python)
            .arg(test_database("make-test-databases.py"))
            .arg(&out)
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
        assert!(
            status.success(),
            "make-test-databases.py failed; is mmdb-writer installed (.ci/requirements.txt)?"
        );
        for name in ["test-city.mmdb", "test-asn.mmdb"] {
            let written = std::fs::read(out.join(name)).unwrap();
            let committed = std::fs::read(test_database(name)).unwrap();
            assert!(
                written == committed,
                "events/geoip/{name} differs from what make-test-databases.py writes: run it again"
            );
        }
        std::fs::remove_dir_all(&out).unwrap();
    }

    #[test]
    fn the_registry_leaves_geoip_out_with_one_note_unless_a_database_is_configured() {
        let names = |plugins: &[Box<dyn Plugin>]| -> Vec<&'static str> {
            plugins.iter().map(|p| p.name()).collect()
        };
        let (plugins, notes) = crate::builtin_plugins_with_notes(&PluginConfig::default()).unwrap();
        assert!(!names(&plugins).contains(&"geoip"));
        assert_eq!(notes.0, [NOT_CONFIGURED_NOTE]);

        let (plugins, notes) = crate::builtin_plugins_with_notes(&config(true, true)).unwrap();
        assert_eq!(names(&plugins).iter().filter(|n| **n == "geoip").count(), 1);
        assert!(notes.0.is_empty());

        let missing = PluginConfig {
            geoip_city_database: Some(PathBuf::from("/nonexistent/city.mmdb")),
            ..PluginConfig::default()
        };
        assert!(crate::builtin_plugins_with_notes(&missing).is_err());
    }

    #[test]
    fn an_unreadable_database_is_an_error_naming_the_path_and_the_fix() {
        let missing = PluginConfig {
            geoip_city_database: Some(PathBuf::from("/nonexistent/GeoLite2-City.mmdb")),
            ..PluginConfig::default()
        };
        let error = GeoIp::from_config(&missing, &mut ConfigNotes::default()).unwrap_err();
        assert!(
            error.0.contains("/nonexistent/GeoLite2-City.mmdb"),
            "{error}"
        );
        assert!(error.0.contains(GEOIP_CITY_ENV), "{error}");

        // A file that exists but is no MaxMind database (this very source file).
        let not_a_database = PluginConfig {
            geoip_asn_database: Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/geoip.rs")),
            ..PluginConfig::default()
        };
        let error = GeoIp::from_config(&not_a_database, &mut ConfigNotes::default()).unwrap_err();
        assert!(error.0.contains("src/geoip.rs"), "{error}");
        assert!(error.0.contains(GEOIP_ASN_ENV), "{error}");
    }
}
