#!/usr/bin/env python3
"""Writes the two tiny MaxMind-format (.mmdb) databases the GeoIP plugin's tests and the demo use.

    python3 -m pip install mmdb-writer==0.2.7   # pinned in .ci/requirements.txt
    python3 events/geoip/make-test-databases.py [OUTPUT_DIR]   # default: this script's folder

Every network here is fake: the IPv4 documentation ranges of RFC 5737 (TEST-NET-1
192.0.2.0/24, TEST-NET-2 198.51.100.0/24, TEST-NET-3 203.0.113.0/24), the IPv6 documentation
prefix 2001:db8::/32 (RFC 3849) and the documentation AS numbers 64496-64511 (RFC 5398). They
never route on the Internet, so nothing in these files says anything about a real address; only
the cities' coordinates are real (city centres, to four decimals), so that distance and speed
computations over them give the true figures.

The records have the shape of GeoIP2/GeoLite2 City and ASN records, so the plugin reads these
files and MaxMind's own databases with the same code. The output is deterministic: running the
script again writes identical files.
"""

import sys
from pathlib import Path

from mmdb_writer import MMDBWriter, MmdbU16, MmdbU32
from netaddr import IPSet

# (network, city, country ISO code, country name, continent code, continent name,
#  latitude, longitude, time zone, geoname id of the city)
CITIES = [
    ("192.0.2.0/26", "New York", "US", "United States", "NA", "North America",
     40.7128, -74.0060, "America/New_York", 5128581),
    ("192.0.2.64/26", "London", "GB", "United Kingdom", "EU", "Europe",
     51.5074, -0.1278, "Europe/London", 2643743),
    ("198.51.100.0/25", "Sydney", "AU", "Australia", "OC", "Oceania",
     -33.8688, 151.2093, "Australia/Sydney", 2147714),
    ("198.51.100.128/25", "Tokyo", "JP", "Japan", "AS", "Asia",
     35.6762, 139.6503, "Asia/Tokyo", 1850147),
    ("203.0.113.0/25", "São Paulo", "BR", "Brazil", "SA", "South America",
     -23.5505, -46.6333, "America/Sao_Paulo", 3448439),
    ("2001:db8:1::/48", "Tokyo", "JP", "Japan", "AS", "Asia",
     35.6762, 139.6503, "Asia/Tokyo", 1850147),
]

# A network known to the ASN database but to no city: a lookup finds an AS and no place.
ASNS = [
    ("192.0.2.0/24", 64496, "Example Transit New York-London"),
    ("198.51.100.0/24", 64497, "Example Pacific Networks"),
    ("203.0.113.0/24", 64498, "Example South America Telecom"),
    ("2001:db8:1::/48", 64499, "Example IPv6 Tokyo"),
]


# Fixed build time (2026-01-01T00:00:00Z) in the metadata, so the files are reproducible.
BUILD_EPOCH = 1767225600


class ReproducibleWriter(MMDBWriter):
    """MMDBWriter with a fixed `build_epoch` (it writes the current time otherwise)."""

    def _build_meta(self):
        meta = super()._build_meta()
        meta["build_epoch"] = BUILD_EPOCH
        return meta


# Integers carry the types of MaxMind's schema (readers check them), not the smallest that fits.
def city_record(city, iso, country, continent_code, continent, lat, lon, tz, geoname_id):
    return {
        "city": {"geoname_id": MmdbU32(geoname_id), "names": {"en": city}},
        "continent": {"code": continent_code, "names": {"en": continent}},
        "country": {"iso_code": iso, "names": {"en": country}},
        "registered_country": {"iso_code": iso, "names": {"en": country}},
        "location": {
            "latitude": lat,
            "longitude": lon,
            "time_zone": tz,
            "accuracy_radius": MmdbU16(20),
        },
    }


def write(path, database_type, description, records):
    """Writes one IPv6 database (IPv4 networks under ::/96, as MaxMind's own) of (network, record)."""
    writer = ReproducibleWriter(
        ip_version=6,
        ipv4_compatible=True,
        database_type=database_type,
        languages=["en"],
        description=description,
    )
    for network, record in records:
        writer.insert_network(IPSet([network]), record)
    writer.to_db_file(str(path))
    print(f"wrote {path}")


def main():
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent
    out.mkdir(parents=True, exist_ok=True)
    write(
        out / "test-city.mmdb",
        "Lakewatch-Test-City",
        "lakewatch test City database: documentation networks only (RFC 5737, RFC 3849)",
        [(network, city_record(*fields)) for network, *fields in CITIES],
    )
    write(
        out / "test-asn.mmdb",
        "Lakewatch-Test-ASN",
        "lakewatch test ASN database: documentation networks and AS numbers only "
        "(RFC 5737, RFC 3849, RFC 5398)",
        [
            (network, {"autonomous_system_number": MmdbU32(number),
                       "autonomous_system_organization": organization})
            for network, number, organization in ASNS
        ],
    )


if __name__ == "__main__":
    main()
