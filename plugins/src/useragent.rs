//! `useragent`: what browser, OS and kind of device a user agent string describes.
//!
//! New-device rules compare a login's device with the user's earlier ones; a raw user agent
//! changes with every browser update, so this plugin reduces it (with the `woothee` parser) to
//! a few stable parts and a fingerprint `os-osmajor-device-browser` that only changes when the
//! user really uses something else:
//!
//! ```json
//! "useragentinfo": {"browser": "Chrome", "browserversion": "120.0.0.0", "os": "Windows",
//!                   "osmajor": "10", "device": "desktop", "fingerprint": "windows-10-desktop-chrome"}
//! ```
//!
//! A part the parser does not know is `null` (and `unknown` in the fingerprint). A user agent
//! the parser recognises nothing in (`awslambda-worker`, an empty string) gets no
//! `useragentinfo`.
//!
//! # Where the user agent is read
//! The first of [`USER_AGENT_FIELDS`] that holds a non-empty string (paths below `details`,
//! lower case). URL-encoded values, as in CloudFront logs (`Mozilla/5.0%20(X11;…`), are decoded
//! first.
//!
//! # Device types
//! `desktop` (woothee's `pc`), `mobile` (`smartphone`, `mobilephone`), `tablet` (iPad, and
//! Android without `Mobile` in the string, as Google's convention says), `bot` (`crawler`),
//! `appliance` (game consoles, TVs), `other` (`misc`: HTTP libraries such as curl).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use serde_json::{Map, Value};
use woothee::parser::{Parser, WootheeResult};

use crate::ipaddress::set_keeping_original;
use crate::plugin::{Plugin, PluginError, Registration, Stage, Trigger, Verdict};
use crate::shell::Event;

/// Where the user agent is looked for, in order (dotted paths below `details`).
pub const USER_AGENT_FIELDS: &[&str] = &[
    // CloudTrail `userAgent`, G Suite, many JSON logs.
    "useragent",
    "user_agent",
    "user-agent",
    "useragentstring",
    // nginx / Apache JSON log formats.
    "http_user_agent",
    // CloudFront and W3C extended logs.
    "cs(user-agent)",
    // A CloudTrail record wrapped in an EventBridge event.
    "detail.useragent",
    // Elastic Common Schema.
    "user_agent.original",
    // Okta System Log.
    "client.useragent.rawuseragent",
];

/// Where the parsed parts are written.
pub const INFO_KEY: &str = "useragentinfo";

/// What woothee says when it does not know.
const UNKNOWN: &str = "UNKNOWN";

/// How many distinct user agents the plugin remembers. Parsing one costs microseconds, more
/// than the rest of the pipeline; a few distinct agents make up nearly all events of a
/// deployment, so remembering them keeps the plugin off the profile. When full, the memory is
/// emptied and refilled.
pub const CACHE_CAPACITY: usize = 4096;

/// The plugin, with its memory of agents already parsed.
#[derive(Debug, Default)]
pub struct UserAgent {
    cache: Mutex<HashMap<String, Option<Value>>>,
}

impl UserAgent {
    /// [`describe`], remembered.
    fn describe_cached(&self, agent: &str) -> Option<Value> {
        let cache = || self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(known) = cache().get(agent) {
            return known.clone();
        }
        // Parsed without holding the lock, so a panic in the parser cannot poison it.
        let info = describe(agent).map(Value::Object);
        let mut cache = cache();
        if cache.len() >= CACHE_CAPACITY {
            cache.clear();
        }
        cache.insert(agent.to_string(), info.clone());
        info
    }
}

impl Plugin for UserAgent {
    fn name(&self) -> &'static str {
        "useragent"
    }

    fn registration(&self) -> Registration {
        Registration::new(
            Stage::Enrich,
            10,
            USER_AGENT_FIELDS
                .iter()
                .map(|field| Trigger::Field(field.to_string()))
                .collect(),
        )
    }

    fn process(&self, event: &mut Event) -> Result<Verdict, PluginError> {
        let Some(agent) = USER_AGENT_FIELDS
            .iter()
            .filter_map(|field| event.detail_str(field))
            .find(|agent| !agent.trim().is_empty())
        else {
            return Ok(Verdict::Unchanged);
        };
        let Some(info) = self.describe_cached(agent) else {
            return Ok(Verdict::Unchanged);
        };
        Ok(
            if set_keeping_original(&mut event.details, INFO_KEY, info) {
                Verdict::Changed
            } else {
                Verdict::Unchanged
            },
        )
    }
}

/// The parts of a user agent, or `None` when nothing in it is recognised.
pub fn describe(agent: &str) -> Option<Map<String, Value>> {
    let decoded = percent_encoding::percent_decode_str(agent.trim()).decode_utf8_lossy();
    let result = Parser::new().parse(&decoded)?;
    let browser = browser(&result);
    let (os, osmajor) = operating_system(&result);
    if browser.is_none() && os.is_none() {
        return None;
    }
    let device = device(&result, &decoded);
    let fingerprint = [os.as_deref(), osmajor.as_deref(), Some(device), browser]
        .map(fingerprint_part)
        .join("-");
    let version =
        known(result.version).filter(|_| browser.is_some() && result.name != "HTTP Library");
    let mut info = Map::new();
    info.insert("browser".into(), browser.into());
    info.insert("browserversion".into(), version.into());
    info.insert("os".into(), os.into());
    info.insert("osmajor".into(), osmajor.into());
    info.insert("device".into(), device.into());
    info.insert("fingerprint".into(), fingerprint.into());
    Some(info)
}

/// `None` for woothee's `UNKNOWN` and empty values.
fn known(value: &str) -> Option<&str> {
    Some(value).filter(|v| !v.is_empty() && *v != UNKNOWN)
}

/// The browser or client name; for HTTP libraries woothee puts the library (`curl`) in the
/// version.
fn browser<'a>(result: &WootheeResult<'a>) -> Option<&'a str> {
    if result.name == "HTTP Library" {
        return known(result.version);
    }
    known(result.name)
}

/// The OS family and its major version: `Windows`/`10`, `macOS`/`10`, `iOS`/`17`, `Android`/`14`.
fn operating_system(result: &WootheeResult<'_>) -> (Option<String>, Option<String>) {
    let Some(os) = known(result.os) else {
        return (None, None);
    };
    let version = known(&result.os_version);
    let major = |version: &str| {
        let major: String = version.chars().take_while(|c| c.is_ascii_digit()).collect();
        Some(major).filter(|m| !m.is_empty())
    };
    match os {
        // woothee names Windows by release (`Windows 10`, `Windows 7`, `Windows XP`).
        _ if os.starts_with("Windows ") => {
            let release = &os["Windows ".len()..];
            let major = major(release).or_else(|| Some(release.to_string()));
            (Some("Windows".into()), major)
        }
        "Mac OSX" => (Some("macOS".into()), version.and_then(major)),
        "iPhone" | "iPad" | "iPod" => (Some("iOS".into()), version.and_then(major)),
        _ => (Some(os.to_string()), version.and_then(major)),
    }
}

/// The kind of device, from woothee's category and, for tablets, the OS and string.
fn device(result: &WootheeResult<'_>, agent: &str) -> &'static str {
    match result.category {
        "pc" => "desktop",
        "smartphone" if result.os == "iPad" => "tablet",
        "smartphone" if result.os == "Android" && !agent.contains("Mobile") => "tablet",
        "smartphone" | "mobilephone" => "mobile",
        "crawler" => "bot",
        "appliance" => "appliance",
        "misc" => "other",
        _ => "unknown",
    }
}

/// One part of the fingerprint: lower case, with no `-` or spaces (which would blur the parts).
fn fingerprint_part(part: Option<&str>) -> String {
    part.unwrap_or("unknown")
        .chars()
        .map(|c| match c {
            '-' | ' ' => '_',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shell::RecordKind;
    use crate::sources::testing::process_json;
    use chrono::Utc;
    use serde_json::json;

    const CHROME_WINDOWS: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
    const SAFARI_IOS: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1";
    const FIREFOX_LINUX: &str =
        "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0";

    fn run(details: Value) -> (Verdict, Value) {
        let (verdict, event) = process_json(&UserAgent::default(), &details.to_string());
        (verdict, Value::Object(event.details))
    }

    fn info(agent: &str) -> Value {
        Value::Object(describe(agent).expect("recognised"))
    }

    #[test]
    fn chrome_on_windows() {
        assert_eq!(
            info(CHROME_WINDOWS),
            json!({"browser": "Chrome", "browserversion": "120.0.0.0", "os": "Windows",
                   "osmajor": "10", "device": "desktop", "fingerprint": "windows-10-desktop-chrome"})
        );
    }

    #[test]
    fn safari_on_ios() {
        assert_eq!(
            info(SAFARI_IOS),
            json!({"browser": "Safari", "browserversion": "17.1", "os": "iOS",
                   "osmajor": "17", "device": "mobile", "fingerprint": "ios-17-mobile-safari"})
        );
    }

    #[test]
    fn firefox_on_linux_has_no_os_version() {
        assert_eq!(
            info(FIREFOX_LINUX),
            json!({"browser": "Firefox", "browserversion": "121.0", "os": "Linux",
                   "osmajor": null, "device": "desktop", "fingerprint": "linux-unknown-desktop-firefox"})
        );
    }

    #[test]
    fn curl_is_an_other_device_named_by_its_library() {
        assert_eq!(
            info("curl/8.4.0"),
            json!({"browser": "curl", "browserversion": null, "os": null,
                   "osmajor": null, "device": "other", "fingerprint": "unknown-unknown-other-curl"})
        );
    }

    #[test]
    fn tablets_macs_android_phones_and_bots() {
        let cases = [
            (
                "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1",
                "ios-16-tablet-safari",
            ),
            (
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Safari/605.1.15",
                "macos-10-desktop-safari",
            ),
            (
                "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36",
                "android-14-mobile-chrome",
            ),
            (
                "Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
                "android-13-tablet-chrome",
            ),
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Edg/120.0.0.0",
                "windows-10-desktop-edge",
            ),
            (
                "Mozilla/4.0 (compatible; MSIE 8.0; Windows NT 6.1; Trident/4.0)",
                "windows-7-desktop-internet_explorer",
            ),
            (
                "Googlebot/2.1 (+http://www.google.com/bot.html)",
                "unknown-unknown-bot-misc_crawler",
            ),
        ];
        for (agent, fingerprint) in cases {
            assert_eq!(info(agent)["fingerprint"], fingerprint, "{agent}");
        }
    }

    #[test]
    fn a_browser_update_keeps_the_fingerprint() {
        let older = CHROME_WINDOWS.replace("Chrome/120.0.0.0", "Chrome/119.0.6045.199");
        assert_eq!(
            info(&older)["fingerprint"],
            info(CHROME_WINDOWS)["fingerprint"]
        );
        assert_ne!(
            info(&older)["browserversion"],
            info(CHROME_WINDOWS)["browserversion"]
        );
    }

    #[test]
    fn url_encoded_cloudfront_agents_are_decoded() {
        let (verdict, details) = run(json!({
            "cs(user-agent)": "Mozilla/5.0%20(Windows%20NT%2010.0;%20Win64;%20x64)%20AppleWebKit/537.36%20(KHTML,%20like%20Gecko)%20Chrome/120.0.0.0%20Safari/537.36"
        }));
        assert_eq!(verdict, Verdict::Changed);
        assert_eq!(
            details["useragentinfo"]["fingerprint"],
            "windows-10-desktop-chrome"
        );
    }

    #[test]
    fn empty_and_unrecognised_agents_get_nothing() {
        for agent in ["", "   ", "awslambda-worker", "-"] {
            let (verdict, details) = run(json!({"useragent": agent}));
            assert_eq!(verdict, Verdict::Unchanged, "{agent:?}");
            assert!(details.get("useragentinfo").is_none(), "{agent:?}");
        }
    }

    #[test]
    fn reads_the_first_listed_field_that_holds_an_agent() {
        let (_, details) = run(json!({
            "useragent": "",
            "http_user_agent": SAFARI_IOS,
            "user_agent": {"original": FIREFOX_LINUX},
        }));
        assert_eq!(details["useragentinfo"]["browser"], "Safari");

        let (_, details) = run(json!({"client": {"useragent": {"rawuseragent": FIREFOX_LINUX}}}));
        assert_eq!(details["useragentinfo"]["browser"], "Firefox");

        let (_, details) = run(json!({"detail": {"useragent": SAFARI_IOS}}));
        assert_eq!(details["useragentinfo"]["browser"], "Safari");
    }

    #[test]
    fn registers_on_each_user_agent_field() {
        let registration = UserAgent::default().registration();
        assert_eq!(registration.stage, Stage::Enrich);
        assert_eq!(registration.triggers.len(), USER_AGENT_FIELDS.len());
        let mut event = Event::empty(Utc::now(), RecordKind::Json);
        assert!(!registration.matches(&event));
        event
            .details
            .insert("cs(user-agent)".into(), json!("curl/8"));
        assert!(registration.matches(&event));
    }

    #[test]
    fn remembered_agents_give_the_same_answer_and_the_memory_stays_bounded() {
        let plugin = UserAgent::default();
        assert_eq!(
            plugin.describe_cached(CHROME_WINDOWS),
            Some(info(CHROME_WINDOWS))
        );
        assert_eq!(
            plugin.describe_cached(CHROME_WINDOWS),
            Some(info(CHROME_WINDOWS))
        );
        assert_eq!(plugin.describe_cached("awslambda-worker"), None);
        assert_eq!(plugin.describe_cached("awslambda-worker"), None);
        for n in 0..CACHE_CAPACITY + 10 {
            plugin.describe_cached(&format!("curl/{n}"));
        }
        assert!(plugin.cache.lock().unwrap().len() <= CACHE_CAPACITY);
        assert_eq!(plugin.describe_cached(SAFARI_IOS), Some(info(SAFARI_IOS)));
    }

    #[test]
    fn running_twice_changes_nothing_the_second_time() {
        let (_, details) = run(json!({"useragent": CHROME_WINDOWS}));
        let (verdict, again) = run(details.clone());
        assert_eq!(verdict, Verdict::Unchanged);
        assert_eq!(again, details);
    }
}
